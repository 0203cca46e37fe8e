"""Signature values and the portable signature JSON format.

The format (ARCHITECTURE.md) is what `kdiag inspect MODEL --format json` prints and what every
`--signature` option accepts, so CI and probes can work without TensorFlow and without the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdiag.errors import KdiagError

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# TensorFlow's DataType enum (tensorflow/core/framework/types.proto) -> the names TF uses
# (tf.float32.name == "float32"). Only the numbering matters here; it is stable by design.
DTYPE_NAMES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64", 24: "float8_e5m2",
    25: "float8_e4m3fn", 26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz", 28: "float8_e5m2fnuz",
    29: "int4", 30: "uint4",
}
KNOWN_DTYPES = frozenset(DTYPE_NAMES.values())
# The dtypes TF Serving fills from a JSON value (json_tensor.cc, AddValueToTensor); any other
# (float16, bfloat16, uint16, complex) fails with "Conversion of JSON Value: ... to type: ...".
JSON_DTYPES = frozenset({"float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                         "uint32", "uint64", "bool", "string"})
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "str": "string",
                  "bytes": "string", "object": "string"}


def normalise_dtype(name: str) -> str:
    """Accept `float32`, `DT_FLOAT`, `float`, `tf.float32`: people paste all of them."""
    n = name.strip().lower().removeprefix("tf.")
    if n.startswith("dt_"):
        n = n[3:]
        n = {"float": "float32", "double": "float64", "half": "float16"}.get(n, n)
    n = _DTYPE_ALIASES.get(n, n)
    if n not in KNOWN_DTYPES:
        raise KdiagError(f"Unknown dtype {name!r}: use a TensorFlow dtype name such as float32, "
                         "int64 or string.")
    return n


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown dimension
    tensor_name: str | None = None  # graph name, e.g. "serving_default_args_0:0"

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def has_batch_dim(self) -> bool:
        """Row-format requests (`instances`) add axis 0, so a usable batch axis is an unknown one."""
        return bool(self.shape) and self.shape[0] == -1

    @property
    def instance_shape(self) -> tuple[int, ...] | None:
        """The shape of one instance in a row-format request: the signature shape minus axis 0."""
        if self.shape is None or not self.shape:
            return self.shape
        return self.shape[1:]

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, d: dict, where: str = "tensor") -> TensorSpec:
        if not isinstance(d, dict) or "dtype" not in d:
            raise KdiagError(f"{where}: expected an object with \"dtype\" and \"shape\".")
        shape = d.get("shape")
        if shape is not None:
            if not isinstance(shape, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and x >= -1 for x in shape
            ):
                raise KdiagError(f"{where}: \"shape\" must be a list of integers (-1 for an "
                                 "unknown dimension) or null for an unknown rank.")
            shape = tuple(shape)
        return cls(dtype=normalise_dtype(str(d["dtype"])), shape=shape)


# TensorFlow's DataType enum names (types.proto) where they differ from "DT_" + kdiag's name.
_DT_SPECIAL = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF"}


def dtype_enum_name(dtype: str) -> str:
    """kdiag's dtype name -> TensorFlow's DataType enum name (DT_FLOAT, DT_STRING...), as
    TF Serving prints it in metadata and in SignatureDef debug strings."""
    if dtype in _DT_SPECIAL:
        return _DT_SPECIAL[dtype]
    if dtype.startswith("dtype_"):
        return "DT_INVALID" if dtype == "dtype_0" else dtype
    return "DT_" + dtype.upper()


def format_shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "unknown rank"
    return "(" + ", ".join("?" if d == -1 else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class ExampleFeature:
    """One feature a tf.Example parser in the graph reads (tf.io.parse_example's spec).

    `shape` None: a variable-length (sparse or ragged) feature; `required`: a fixed-length
    feature without a default, which every Example must hold."""

    key: str
    dtype: str  # float32 | int64 | string: the three value lists a tf.train.Feature can hold
    shape: tuple[int, ...] | None
    required: bool = True


@dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    # Graph facts found while reading the artifact (e.g. "decodes images", "parses tf.Example").
    notes: tuple[str, ...] = field(default=(), compare=False)
    # The features a ParseExample op behind the single string input reads, read from the graph.
    example_features: tuple[ExampleFeature, ...] = field(default=(), compare=False)

    @property
    def is_predict(self) -> bool:
        return self.method_name == PREDICT_METHOD

    def b64_inputs(self) -> list[str]:
        """String inputs: binary data must travel as {"b64": ...} in TF Serving's REST JSON."""
        return [k for k, v in self.inputs.items() if v.dtype == "string"]

    def to_json(self) -> dict:
        return {
            "signature_name": self.name,
            "method_name": self.method_name,
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> Signature:
        if not isinstance(d, dict) or not isinstance(d.get("inputs"), dict):
            raise KdiagError("A signature JSON object needs an \"inputs\" object "
                             "(the format `kdiag inspect MODEL --format json` prints).")
        name = d.get("signature_name", DEFAULT_SIGNATURE)
        return cls(
            name=str(name),
            method_name=str(d.get("method_name", PREDICT_METHOD)),
            inputs={k: TensorSpec.from_json(v, f"input {k!r}") for k, v in d["inputs"].items()},
            outputs={k: TensorSpec.from_json(v, f"output {k!r}")
                     for k, v in _outputs_object(d.get("outputs")).items()},
        )


def _outputs_object(value: object) -> dict:
    if value is None or isinstance(value, dict):
        return value or {}
    raise KdiagError("A signature's \"outputs\" must be an object of name -> {dtype, shape}.")


def signatures_from_json(doc: object) -> list[Signature]:
    """Accept either inspect's output (`{"signatures": [...]}`) or one signature object."""
    if isinstance(doc, dict) and isinstance(doc.get("signatures"), list):
        return [Signature.from_json(s) for s in doc["signatures"]]
    if isinstance(doc, dict) and isinstance(doc.get("signatures"), dict):
        return [Signature.from_json({"signature_name": k, **v} if isinstance(v, dict) else v)
                for k, v in doc["signatures"].items()]
    if isinstance(doc, dict):
        return [Signature.from_json(doc)]
    raise KdiagError("A signature file must hold a JSON object: one signature, or "
                     "`kdiag inspect MODEL --format json` output.")


def pick_signature(signatures: list[Signature], name: str | None = None) -> Signature:
    """Choose the signature a request without `signature_name` gets: `serving_default`."""
    wanted = name or DEFAULT_SIGNATURE
    for s in signatures:
        if s.name == wanted:
            return s
    if name is None and len(signatures) == 1:
        return signatures[0]
    have = ", ".join(s.name for s in signatures) or "none"
    raise KdiagError(f"No signature named {wanted!r} (the model has: {have}). "
                     "Pick one with --signature-name.")
