"""rapidjson 1.1.0 as TF Serving uses it: its reader, its PrettyWriter, and its number text.

TF Serving (tensorflow_serving/workspace.bzl pins rapidjson v1.1.0) parses REST bodies with
rapidjson and quotes parts of the parsed document in its error messages through rapidjson's
PrettyWriter. Python's json or orjson accept and print different things (NaN tokens, numbers
beyond 64 bits, invalid UTF-8 inside strings, duplicate keys, BOMs, text after the document), so
the exact, slow path of kdiag's emulation reads and writes JSON with this module. It is
implemented from rapidjson's documented behaviour and read against include/rapidjson/{reader,
writer,prettywriter,document}.h and internal/{strtod,dtoa}.h at v1.1.0; no code is copied.
"""

from __future__ import annotations

import binascii
import math
import re
from typing import Any

# rapidjson error/en.h (GetParseError_En), v1.1.0.
DOCUMENT_EMPTY = "The document is empty."
ROOT_NOT_SINGULAR = "The document root must not be followed by other values."
VALUE_INVALID = "Invalid value."
OBJECT_MISS_NAME = "Missing a name for object member."
OBJECT_MISS_COLON = "Missing a colon after a name of object member."
OBJECT_MISS_COMMA = "Missing a comma or '}' after an object member."
ARRAY_MISS_COMMA = "Missing a comma or ']' after an array element."
STRING_BAD_HEX = "Incorrect hex digit after \\u escape in string."
STRING_BAD_SURROGATE = "The surrogate pair in string is invalid."
STRING_BAD_ESCAPE = "Invalid escape character in string."
STRING_MISS_QUOTE = "Missing a closing quotation mark in string."
NUMBER_TOO_BIG = "Number too big to be stored in double."
NUMBER_MISS_FRACTION = "Miss fraction part in number."
NUMBER_MISS_EXPONENT = "Miss exponent in number."


class RapidJsonError(Exception):
    """A parse error with rapidjson's English text and byte offset (GetErrorOffset)."""

    def __init__(self, text: str, offset: int) -> None:
        super().__init__(f"{text} at offset: {offset}")
        self.text = text
        self.offset = offset


class JObj:
    """A rapidjson object: members in document order, duplicate names kept.

    rapidjson's FindMember returns the first member with a name, MemberCount counts duplicates
    and iteration visits all of them; TF Serving relies on each of these in different places.
    """

    __slots__ = ("members",)

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = members

    def find(self, key: str, default: Any = None) -> Any:
        for k, v in self.members:
            if k == key:
                return v
        return default

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"JObj({self.members!r})"


def decode_str(raw: bytes) -> str:
    """rapidjson strings are bytes (no UTF-8 validation); keep them lossless as str."""
    return raw.decode("utf-8", "surrogateescape")


def encode_str(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------

_WS = re.compile(rb"[ \t\n\r]*")
_STR_RUN = re.compile(rb'[^"\\\x00-\x1f]*')
_DIGITS = re.compile(rb"[0-9]*")
_SIMPLE_ESCAPES = {0x22: b'"', 0x5C: b"\\", 0x2F: b"/", 0x62: b"\b", 0x66: b"\f",
                   0x6E: b"\n", 0x72: b"\r", 0x74: b"\t"}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_POW10 = [float(f"1e{i}") for i in range(309)]
_ROOT_TOKENS_EMPTY = frozenset(b"]},:")
_U64 = 1 << 64
_DBL_MAX_DIV_10 = 1.7976931348623157e307


def _fast_path(significand: float, exp: int) -> float:
    if exp < -308:
        return 0.0
    if exp >= 0:
        return significand * _POW10[exp]
    return significand / _POW10[-exp]


def _strtod_normal_precision(d: float, p: int) -> float:
    # internal/strtod.h StrtodNormalPrecision: not correctly rounded for long inputs.
    if p < -308:
        return _fast_path(_fast_path(d, -308), p + 308)
    return _fast_path(d, p)


def _hex4(b: bytes, i: int, esc: int) -> tuple[int, int]:
    n = len(b)
    for j in range(4):
        if i + j >= n or b[i + j] not in _HEX:
            raise RapidJsonError(STRING_BAD_HEX, esc)
    return int(b[i:i + 4], 16), i + 4


def _parse_string(b: bytes, i: int) -> tuple[str, int]:
    n = len(b)
    i += 1
    out = bytearray()
    while True:
        m = _STR_RUN.match(b, i)
        out += m.group()
        i = m.end()
        if i >= n:
            raise RapidJsonError(STRING_MISS_QUOTE, n)
        c = b[i]
        if c == 0x22:
            return decode_str(bytes(out)), i + 1
        if c == 0x5C:
            esc = i
            e = b[i + 1] if i + 1 < n else 0
            if e in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[e]
                i += 2
            elif e == 0x75:
                cp, i = _hex4(b, i + 2, esc)
                if 0xD800 <= cp <= 0xDBFF:
                    if not (i + 1 < n and b[i] == 0x5C and b[i + 1] == 0x75):
                        raise RapidJsonError(STRING_BAD_SURROGATE, esc)
                    cp2, i = _hex4(b, i + 2, esc)
                    if not 0xDC00 <= cp2 <= 0xDFFF:
                        raise RapidJsonError(STRING_BAD_SURROGATE, esc)
                    cp = (((cp - 0xD800) << 10) | (cp2 - 0xDC00)) + 0x10000
                # A lone low surrogate is encoded as three bytes, as rapidjson's UTF8::Encode does.
                out += chr(cp).encode("utf-8", "surrogatepass")
            else:
                raise RapidJsonError(STRING_BAD_ESCAPE, esc)
        elif c == 0:
            raise RapidJsonError(STRING_MISS_QUOTE, i)
        else:
            raise RapidJsonError(STRING_BAD_ESCAPE, i)


def _literal(b: bytes, i: int, word: bytes, value: Any) -> tuple[Any, int]:
    n = len(b)
    for j in range(1, len(word)):
        if i + j >= n or b[i + j] != word[j]:
            raise RapidJsonError(VALUE_INVALID, i + j)
    return value, i + len(word)


def _peek(b: bytes, i: int) -> int:
    return b[i] if i < len(b) else 0


_JSON_NUMBER = re.compile(rb"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?(?![.eE])")
_MAX53 = (1 << 53) - 1


def _parse_number(b: bytes, i: int) -> tuple[int | float, int]:
    """reader.h ParseNumber with kParseNanAndInfFlag, without kParseFullPrecisionFlag.

    Well-formed JSON numbers are handled on whole digit strings; NaN/Infinity and malformed
    numbers (which need rapidjson's exact error offsets) go character by character.
    """
    m = _JSON_NUMBER.match(b, i)
    if m is None:
        return _parse_number_slow(b, i)
    minus = m.group(1) == b"-"
    int_digits, frac, exp_sign, exp_digits = m.group(2), m.group(3), m.group(4), m.group(5)
    limit = (1 << 63) if minus else (1 << 64) - 1
    # More than 20 digits cannot fit 64 bits; skipping int() of them also keeps Python's
    # 4300-digit conversion limit out of the way (rapidjson fails such numbers as too big).
    v = int(int_digits) if len(int_digits) <= 20 else limit + 1
    if frac is None and exp_digits is None and v <= limit:
        return (-v if minus else v), m.end()
    use_double = False
    d = 0.0
    if v <= limit:
        ival = v
        sig = len(int_digits) - 1 if v else 0
    else:
        # The 64-bit loop stops at the longest prefix that still fits; the rest is added in
        # floating point, digit by digit.
        k = len(str(limit))
        if int(int_digits[:k]) > limit:
            k -= 1
        ival = 0
        sig = k - 1
        d = float(int(int_digits[:k]))
        for ch in int_digits[k:]:
            if d >= _DBL_MAX_DIV_10:
                raise RapidJsonError(NUMBER_TOO_BIG, i)
            d = d * 10 + (ch - 0x30)
        use_double = True
    exp_frac = 0
    if frac is not None:
        rest = frac
        if not use_double:
            # Fraction digits join the integer significand while it is <= 2^53 - 1 before
            # each step, i.e. until it would exceed 16 significant digits (or 16 and > 2^53-1).
            if ival > _MAX53:
                taken = 0
            else:
                digits = int_digits + frac
                lead = len(digits) - len(digits.lstrip(b"0"))
                t16 = 16 + lead - len(int_digits)  # frac digits giving 16 significant ones
                if t16 < 0:
                    taken = 0
                elif t16 >= len(frac):
                    taken = len(frac)
                else:
                    taken = t16 + (int(digits[:len(int_digits) + t16]) <= _MAX53)
                    taken = min(taken, len(frac))
            zeros = len(frac) - len(frac.lstrip(b"0")) if ival == 0 else 0
            sig += taken - min(taken, zeros)
            exp_frac = -taken
            rest = frac[taken:]
            d = float(int(int_digits + frac[:taken]))
            use_double = True
        for ch in rest:
            if sig >= 17:
                break
            d = d * 10.0 + (ch - 0x30)
            exp_frac -= 1
            if d > 0.0:
                sig += 1
    exp = 0
    if exp_digits is not None:
        if not use_double:
            d = float(ival)
            use_double = True
        digits = exp_digits.lstrip(b"0") or b"0"
        exp = int(digits) if len(digits) <= 12 else 1 << 40
        if exp_sign == b"-":
            # Past 214748364 rapidjson stops accumulating; any such exponent gives 0.
            exp = -min(exp, 214748364)
        elif exp > 308 - exp_frac:
            raise RapidJsonError(NUMBER_TOO_BIG, i)
    d = _strtod_normal_precision(d, exp + exp_frac)
    return (-d if minus else d), m.end()


def _parse_number_slow(b: bytes, i: int) -> tuple[int | float, int]:
    start = i
    minus = _peek(b, i) == 0x2D
    if minus:
        i += 1
    c = _peek(b, i)
    ival = 0
    use64 = False
    use_double = False
    nan_inf = False
    d = 0.0
    sig = 0
    if c == 0x30:
        i += 1
    elif 0x31 <= c <= 0x39:
        ival = c - 0x30
        i += 1
        lim32, last32 = (214748364, 0x38) if minus else (429496729, 0x35)
        while 0x30 <= _peek(b, i) <= 0x39:
            if ival >= lim32 and (ival != lim32 or _peek(b, i) > last32):
                use64 = True
                break
            ival = ival * 10 + (b[i] - 0x30)
            i += 1
            sig += 1
        if use64:
            lim64, last64 = ((0x0CCCCCCCCCCCCCCC, 0x38) if minus
                             else (0x1999999999999999, 0x35))
            while 0x30 <= _peek(b, i) <= 0x39:
                if ival >= lim64 and (ival != lim64 or _peek(b, i) > last64):
                    d = float(ival)
                    use_double = True
                    break
                ival = ival * 10 + (b[i] - 0x30)
                i += 1
                sig += 1
    elif c in (0x49, 0x4E):
        # Consume('N') && Consume('a') && Consume('N'), else Consume('I') && ...: each Consume
        # that succeeds stays consumed, so "NInf" reads as Infinity.
        nan_inf = True
        matched = False
        for ch in b"NaN":
            if _peek(b, i) != ch:
                break
            i += 1
        else:
            matched = True
            d = math.nan
        if not matched:
            for ch in b"Inf":
                if _peek(b, i) != ch:
                    raise RapidJsonError(VALUE_INVALID, i)
                i += 1
            d = -math.inf if minus else math.inf
            if _peek(b, i) == 0x69:
                for ch in b"inity":
                    if _peek(b, i) != ch:
                        raise RapidJsonError(VALUE_INVALID, i)
                    i += 1
    else:
        raise RapidJsonError(VALUE_INVALID, i)

    if use_double:
        while 0x30 <= _peek(b, i) <= 0x39:
            if d >= _DBL_MAX_DIV_10:
                raise RapidJsonError(NUMBER_TOO_BIG, start)
            d = d * 10 + (b[i] - 0x30)
            i += 1

    exp_frac = 0
    if _peek(b, i) == 0x2E:
        i += 1
        if not 0x30 <= _peek(b, i) <= 0x39:
            raise RapidJsonError(NUMBER_MISS_FRACTION, i)
        if not use_double:
            i64 = ival
            while 0x30 <= _peek(b, i) <= 0x39:
                if i64 > 0x1FFFFFFFFFFFFF:
                    break
                i64 = i64 * 10 + (b[i] - 0x30)
                i += 1
                exp_frac -= 1
                if i64 != 0:
                    sig += 1
            d = float(i64)
            use_double = True
        while 0x30 <= _peek(b, i) <= 0x39:
            if sig < 17:
                d = d * 10.0 + (b[i] - 0x30)
                exp_frac -= 1
                if d > 0.0:
                    sig += 1
            i += 1

    exp = 0
    if _peek(b, i) in (0x65, 0x45):
        i += 1
        if not use_double:
            d = float(ival)
            use_double = True
        exp_minus = False
        if _peek(b, i) == 0x2B:
            i += 1
        elif _peek(b, i) == 0x2D:
            exp_minus = True
            i += 1
        if not 0x30 <= _peek(b, i) <= 0x39:
            raise RapidJsonError(NUMBER_MISS_EXPONENT, i)
        m = _DIGITS.match(b, i)
        digits = m.group()
        i = m.end()
        if exp_minus:
            exp = 0
            for ch in digits:
                exp = exp * 10 + (ch - 0x30)
                if exp >= 214748364:
                    break
        else:
            max_exp = 308 - exp_frac
            exp = 0
            for ch in digits:
                exp = exp * 10 + (ch - 0x30)
                if exp > max_exp:
                    raise RapidJsonError(NUMBER_TOO_BIG, start)
        if exp_minus:
            exp = -exp

    if use_double:
        d = _strtod_normal_precision(d, exp + exp_frac)
        return (-d if minus else d), i
    if nan_inf:
        return d, i
    return (-ival if minus else ival), i


def _member_name(b: bytes, i: int) -> tuple[str, int]:
    """An object member's name and its colon (after `{` or `,`): the key and the index of the
    value, with rapidjson's errors at the offsets it reports them."""
    if _peek(b, i) != 0x22:
        raise RapidJsonError(OBJECT_MISS_NAME, i)
    key, i = _parse_string(b, i)
    i = _WS.match(b, i).end()
    if _peek(b, i) != 0x3A:
        raise RapidJsonError(OBJECT_MISS_COLON, i)
    return key, _WS.match(b, i + 1).end()


def parse(data: bytes, *, iterative: bool) -> tuple[Any, int, int]:
    """Parse like rapidjson's GenericDocument::ParseStream over a UTF-8 MemoryStream.

    `iterative` selects TF Serving 2.18+'s flags (kParseIterativeFlag |
    kParseStopWhenDoneFlag): the parse stops after the first value. Otherwise text after the
    first value is an error unless it is whitespace or starts with a NUL byte.
    Returns (value, offset after the value, maximum nesting depth). Objects are JObj, strings
    str (undecodable bytes kept via surrogateescape), integers int, other numbers float.
    """
    b = data
    n = len(b)
    i = 0
    # EncodedInputStream<UTF8<>, MemoryStream> drops 0xEF, 0xBB and 0xBF, each optional.
    for bom in (0xEF, 0xBB, 0xBF):
        if i < n and b[i] == bom:
            i += 1
    i = _WS.match(b, i).end()
    if i >= n or b[i] == 0:
        raise RapidJsonError(DOCUMENT_EMPTY, i)
    if iterative and b[i] in _ROOT_TOKENS_EMPTY:
        # The iterative parser's start state has no transition for these tokens.
        raise RapidJsonError(DOCUMENT_EMPTY, i)

    stack: list[list[Any]] = []  # [is_array, container, pending key]
    depth = 0
    while True:
        c = b[i] if i < n else 0
        complete = True
        if c == 0x7B:  # {
            i = _WS.match(b, i + 1).end()
            if _peek(b, i) == 0x7D:
                value: Any = JObj([])
                depth = max(depth, len(stack) + 1)
                i += 1
            else:
                key, i = _member_name(b, i)
                stack.append([False, [], key])
                depth = max(depth, len(stack))
                complete = False
        elif c == 0x5B:  # [
            i = _WS.match(b, i + 1).end()
            if _peek(b, i) == 0x5D:
                value = []
                depth = max(depth, len(stack) + 1)
                i += 1
            else:
                stack.append([True, [], None])
                depth = max(depth, len(stack))
                complete = False
        elif c == 0x22:
            value, i = _parse_string(b, i)
        elif c == 0x6E:
            value, i = _literal(b, i, b"null", None)
        elif c == 0x74:
            value, i = _literal(b, i, b"true", True)
        elif c == 0x66:
            value, i = _literal(b, i, b"false", False)
        else:
            value, i = _parse_number(b, i)
        if not complete:
            continue
        while True:
            if not stack:
                end = i
                if not iterative:
                    i = _WS.match(b, i).end()
                    if i < n and b[i] != 0:
                        raise RapidJsonError(ROOT_NOT_SINGULAR, i)
                return value, end, depth
            frame = stack[-1]
            i = _WS.match(b, i).end()
            c = _peek(b, i)
            if frame[0]:
                frame[1].append(value)
                if c == 0x2C:
                    i = _WS.match(b, i + 1).end()
                    break
                if c == 0x5D:
                    i += 1
                    value = frame[1]
                    stack.pop()
                    continue
                raise RapidJsonError(ARRAY_MISS_COMMA, i)
            frame[1].append((frame[2], value))
            if c == 0x2C:
                frame[2], i = _member_name(b, _WS.match(b, i + 1).end())
                break
            if c == 0x7D:
                i += 1
                value = JObj(frame[1])
                stack.pop()
                continue
            raise RapidJsonError(OBJECT_MISS_COMMA, i)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------

_ESC = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r",
        0x22: b'\\"', 0x5C: b"\\\\"}
for _c in range(0x20):
    _ESC.setdefault(_c, b"\\u00%02X" % _c)
_NEEDS_ESC = re.compile(rb'[\x00-\x1f"\\]')


def write_string(raw: bytes) -> bytes:
    """writer.h WriteString: escapes quote, backslash and controls; other bytes go out as is."""
    if not _NEEDS_ESC.search(raw):
        return b'"' + raw + b'"'
    return b'"' + _NEEDS_ESC.sub(lambda m: _ESC[m.group()[0]], raw) + b'"'


def _write_exponent(k: int) -> str:
    return f"-{-k}" if k < 0 else str(k)


def _shortest_digits(x: float) -> tuple[str, int]:
    """Digits and exponent with x == int(digits) * 10**exp, shortest round-trip form.

    rapidjson uses Grisu2, which is shortest for almost all doubles; Python's repr is always
    shortest. They can differ in the last digit for rare values (kdiag prints repr's digits).
    """
    s = repr(x)
    mant, _, e = s.partition("e")
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0") or "0"
    exp = (int(e) if e else 0) - len(fp)
    stripped = digits.rstrip("0") or "0"
    return stripped, exp + (len(digits) - len(stripped))


def dtoa(value: float) -> str:
    """internal/dtoa.h dtoa + Prettify with the default maxDecimalPlaces (324)."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    digits, k = _shortest_digits(abs(value))
    length = len(digits)
    kk = length + k
    if k >= 0 and kk <= 21:
        text = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * (-kk) + digits
    elif kk < -324:
        text = "0.0"
    elif length == 1:
        text = digits + "e" + _write_exponent(kk - 1)
    else:
        text = digits[0] + "." + digits[1:] + "e" + _write_exponent(kk - 1)
    return sign + text


class PrettyWriter:
    """rapidjson::PrettyWriter<StringBuffer> (4-space indent), optionally bounded.

    `limit` reproduces TF Serving 2.18's JsonWriterWithLimit: every event is refused once the
    buffer holds `limit` bytes or more, so output is cut at a token boundary (a long string
    that starts below the limit is written whole).
    """

    def __init__(self, *, single_line_arrays: bool = False, limit: int | None = None,
                 cap: int | None = None) -> None:
        self.buf = bytearray()
        self.levels: list[list[Any]] = []  # [in_array, value_count]
        self.single_line = single_line_arrays
        self.limit = limit
        self.cap = cap  # kdiag's own safety stop, not rapidjson's; sets `capped`
        self.capped = False

    def _ok(self) -> bool:
        if self.cap is not None and len(self.buf) >= self.cap:
            self.capped = True
            return False
        return self.limit is None or len(self.buf) < self.limit

    def _indent(self) -> None:
        self.buf += b" " * (4 * len(self.levels))

    def _prefix(self) -> None:
        if not self.levels:
            return
        level = self.levels[-1]
        if level[0]:
            if level[1] > 0:
                self.buf += b", " if self.single_line else b","
            if not self.single_line:
                self.buf += b"\n"
                self._indent()
        else:
            if level[1] > 0:
                self.buf += b",\n" if level[1] % 2 == 0 else b": "
            else:
                self.buf += b"\n"
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def raw(self, text: bytes) -> bool:
        if not self._ok():
            return False
        self._prefix()
        self.buf += text
        return True

    def string(self, raw: bytes) -> bool:
        return self.raw(write_string(raw))

    def double(self, d: float) -> bool:
        if not self._ok():
            return False
        self._prefix()
        if math.isnan(d) or math.isinf(d):
            return False  # Writer::WriteDouble without kWriteNanAndInfFlag
        self.buf += dtoa(d).encode()
        return True

    def start(self, array: bool) -> bool:
        if not self._ok():
            return False
        self._prefix()
        self.levels.append([array, 0])
        self.buf += b"[" if array else b"{"
        return True

    def end(self, array: bool) -> bool:
        if not self._ok():
            return False
        level = self.levels.pop()
        if level[1] and (not array or not self.single_line):
            self.buf += b"\n"
            self._indent()
        self.buf += b"]" if array else b"}"
        return True

    def scalar(self, v: Any) -> bool:
        if v is None:
            return self.raw(b"null")
        if v is True:
            return self.raw(b"true")
        if v is False:
            return self.raw(b"false")
        if isinstance(v, int):
            return self.raw(str(v).encode())
        if isinstance(v, float):
            return self.double(v)
        if isinstance(v, bytes):
            return self.string(v)
        return self.string(encode_str(v))

    def accept(self, value: Any) -> bool:
        """GenericValue::Accept: walk the value, stopping at the first refused event."""
        stack: list[tuple[bool, Any]] = []
        cur = value
        while True:
            if isinstance(cur, JObj):
                if not self.start(False):
                    return False
                stack.append((False, iter(cur.members)))
            elif isinstance(cur, list):
                if not self.start(True):
                    return False
                stack.append((True, iter(cur)))
            elif not self.scalar(cur):
                return False
            while stack:
                is_array, it = stack[-1]
                nxt = next(it, _END)
                if nxt is _END:
                    stack.pop()
                    if not self.end(is_array):
                        return False
                    continue
                if is_array:
                    cur = nxt
                else:
                    if not self.scalar(nxt[0]):
                        return False
                    cur = nxt[1]
                break
            else:
                return True


_END = object()


# ---------------------------------------------------------------------------------------------
# absl helpers TF Serving uses around rapidjson
# ---------------------------------------------------------------------------------------------

def c_escape(raw: bytes) -> str:
    """absl::CEscape: the pre-2.2 error body escaping (octal for non-printable bytes)."""
    out = []
    for c in raw:
        if c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        elif c == 0x22:
            out.append('\\"')
        elif c == 0x27:
            out.append("\\'")
        elif c == 0x5C:
            out.append("\\\\")
        elif c < 0x20 or c >= 0x7F:
            out.append(f"\\{c:03o}")
        else:
            out.append(chr(c))
    return "".join(out)


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_B64_SPACE = frozenset(b" \t\n\v\f\r")
_B64_STRICT = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def base64_unescape(raw: bytes) -> bytes | None:
    """absl::Base64Unescape: whitespace skipped, padding optional ('=' or '.'), None if invalid."""
    if _B64_STRICT.fullmatch(raw):
        return binascii.a2b_base64(raw)
    pad_at = len(raw)
    for j, c in enumerate(raw):
        if c in (0x3D, 0x2E):
            pad_at = j
            break
    data = bytes(c for c in raw[:pad_at] if c not in _B64_SPACE)
    if any(c not in _B64_ALPHABET for c in data):
        return None
    rest = len(data) % 4
    if rest == 1:
        return None
    pads = 0
    for c in raw[pad_at:]:
        if c in (0x3D, 0x2E):
            pads += 1
        elif c not in _B64_SPACE:
            return None
    expected = {0: 0, 2: 2, 3: 1}[rest]
    if pads not in (0, expected):
        return None
    # absl does not check that the unused low bits of the last character are zero.
    return binascii.a2b_base64(data + b"=" * ((4 - rest) % 4))
