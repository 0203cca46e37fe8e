"""A minimal protocol-buffer wire-format reader (and the two writers kdiag needs).

kdiag reads `saved_model.pb` without TensorFlow so that `inspect` answers in milliseconds. Only the
handful of SavedModel fields kdiag needs are decoded; everything else (the graph, the object graph)
is skipped by length, never parsed.
"""

from __future__ import annotations

from collections.abc import Iterator

from kdiag.errors import KdiagError


class ProtobufError(KdiagError):
    pass


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def to_int64(value: int) -> int:
    """Varints carry int64 as two's complement: -1 (an unknown dimension) arrives as 2**64 - 1."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value): ints for varints/fixed, memoryviews for bytes."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    pos = 0
    n = len(mv)
    while pos < n:
        key, pos = read_varint(mv, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtobufError("field number 0")
        if wire == 0:
            value, pos = read_varint(mv, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = read_varint(mv, pos)
            end = pos + length
            if end > n:
                raise ProtobufError("length-delimited field runs past the end of the data")
            yield field, wire, mv[pos:end]
            pos = end
        elif wire == 1:
            if pos + 8 > n:
                raise ProtobufError("truncated fixed64")
            yield field, wire, int.from_bytes(mv[pos:pos + 8], "little")
            pos += 8
        elif wire == 5:
            if pos + 4 > n:
                raise ProtobufError("truncated fixed32")
            yield field, wire, int.from_bytes(mv[pos:pos + 4], "little")
            pos += 4
        else:  # groups (3, 4) are not used by any TensorFlow proto
            raise ProtobufError(f"unsupported wire type {wire}")


def as_str(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise ProtobufError("expected a string field")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError("string field is not UTF-8") from None


def as_bytes(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise ProtobufError("expected a length-delimited field")
    return value


def as_int(value: int | memoryview) -> int:
    if isinstance(value, memoryview):
        raise ProtobufError("expected a number, found a length-delimited field")
    return value


def write_varint(n: int) -> bytes:
    """A varint; a negative int64 is written as its ten-byte two's complement."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def write_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): how tf.Example nests its messages."""
    return write_varint(number << 3 | 2) + write_varint(len(payload)) + payload
