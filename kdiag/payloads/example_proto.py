"""Serialized tf.train.Example protos, written without TensorFlow.

A tf.Example signature takes these bytes in its one string input and parses the features inside
the graph; `saved_model_cli --input_examples` builds them, which is why "it works in the CLI"
(field-notes §4). The message is small (tensorflow/core/example/{example,feature}.proto):

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                       Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kdiag.model.protobuf import write_field, write_varint
from kdiag.model.signature import ExampleFeature


class ExampleError(ValueError):
    """The user's values cannot become the feature the parser reads."""


def _feature(spec: ExampleFeature, value: object) -> bytes:
    values = value if isinstance(value, list | tuple) else [value]
    flat = np.asarray(values, dtype=object).ravel().tolist()
    if spec.shape is not None and spec.shape and -1 not in spec.shape:
        want = int(np.prod(spec.shape))
        if len(flat) != want:
            raise ExampleError(f"feature {spec.key!r} takes {want} value(s) (shape "
                               f"{list(spec.shape)}); {len(flat)} given")
    if spec.dtype == "string":
        items = []
        for v in flat:
            if not isinstance(v, str | bytes):
                raise ExampleError(f"feature {spec.key!r} is a string feature; {v!r} given")
            items.append(write_field(1, v.encode("utf-8") if isinstance(v, str) else v))
        return write_field(1, b"".join(items))
    if any(isinstance(v, str | bytes | bool) or not isinstance(v, int | float) for v in flat):
        raise ExampleError(f"feature {spec.key!r} is {spec.dtype}; it takes numbers")
    if spec.dtype == "int64":
        if any(isinstance(v, float) and not float(v).is_integer() for v in flat):
            raise ExampleError(f"feature {spec.key!r} is int64; whole numbers only")
        packed = b"".join(write_varint(int(v)) for v in flat)
        return write_field(3, write_field(1, packed))
    if spec.dtype == "float32":
        packed = np.asarray(flat, dtype="<f4").tobytes()
        return write_field(2, write_field(1, packed))
    raise ExampleError(f"feature {spec.key!r} has dtype {spec.dtype}, which tf.Example cannot "
                       "hold")


def serialize_example(features: Mapping[str, object], spec: Sequence[ExampleFeature]) -> bytes:
    """One Example holding `features` as the parser's spec types them (keys sorted, as
    protobuf's deterministic serialisation writes a map). Raises ExampleError for a required
    feature that is missing, a key the parser does not read, or a value of the wrong kind."""
    by_key = {f.key: f for f in spec}
    unknown = [k for k in features if k not in by_key]
    if unknown:
        raise ExampleError(f"the parser reads no feature named {', '.join(map(repr, unknown))}")
    missing = [f.key for f in spec if f.required and f.key not in features]
    if missing:
        raise ExampleError(f"feature(s) {', '.join(map(repr, missing))} missing, and the "
                           "parser has no default for them")
    entries = b"".join(
        write_field(1, write_field(1, key.encode("utf-8"))
                    + write_field(2, _feature(by_key[key], features[key])))
        for key in sorted(features))
    return write_field(1, entries)
