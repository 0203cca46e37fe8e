"""TF Serving's Classify and Regress REST APIs: the request parser, the signature checks and the
answer, as `:classify` / `:regress` (and the container's `tfs-method=classify|regress`) get them.

Sources (tensorflow/serving): util/json_tensor.cc FillClassifyRegressRequestFromJson,
MakeExampleFromJsonObject, AddValueToFeature, MakeJsonFromClassificationResult and
MakeJsonFromRegressionResult; servables/tensorflow/classifier.cc and regressor.cc
(GetClassificationSignatureDef / PreProcess* / PostProcess*); servables/tensorflow/util.cc
InputToSerializedExampleTensor. Order of events in http_rest_api_handler.cc: the whole body is
parsed first, then the servable is looked up (404), then the signature is checked, then the
serialized examples are fed to the signature's one input.

The examples are serialized here, TF-free, as tf.Example protobuf bytes (feature.proto and
example.proto are proto3: packed repeated scalars). With a `context`, TF Serving feeds
context bytes + example bytes for each example (a protobuf merge: an example's feature
replaces the context's feature of the same name); kdiag concatenates the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from kdiag.model.protobuf import write_field, write_varint
from kdiag.model.signature import DEFAULT_SIGNATURE, Signature, dtype_enum_name
from kdiag.path import tfserving
from kdiag.path.tfs_rapidjson import JObj, PrettyWriter, base64_unescape, encode_str
from kdiag.path.tfserving import json_type, write_decimal

METHODS = ("classify", "regress")
METHOD_NAMES = {"classify": "tensorflow/serving/classify",
                "regress": "tensorflow/serving/regress"}
# b724ceda (2020-08-20, TF Serving 2.4): the method_name check became the opt-in flag
# --enable_signature_method_name_check (default off; the container never sets it). Before, a
# predict signature called through :classify/:regress always failed on its method_name.
_METHOD_CHECK_BEFORE = (2, 4)
# 21360c76 (2021-10-11, TF Serving 2.8): "uint64"/"int64" became "uint64_t"/"int64_t".
_UINT64_T_SINCE = (2, 8)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class ExamplesRequest:
    """A parsed Classify/Regress body: what TF Serving feeds the signature."""

    method: str
    signature_name: str  # the name looked up ("serving_default" when the body names none)
    serialized: list[bytes]  # one tf.Example per example, context bytes first

    def tensor(self) -> np.ndarray:
        arr = np.empty(len(self.serialized), dtype=object)
        arr[:] = self.serialized
        return arr


# ------------------------------------------------------------------------------------------------
# tf.Example bytes
# ------------------------------------------------------------------------------------------------

def _feature_bytes(kind: str | None, values: list) -> bytes:
    if kind is None:
        return b""  # KIND_NOT_SET: an empty list in the body
    if kind == "bytes":
        return write_field(1, b"".join(write_field(1, v) for v in values))
    if kind == "float":
        packed = struct.pack(f"<{len(values)}f", *values)
        return write_field(2, write_field(1, packed) if values else b"")
    packed = b"".join(write_varint(v) for v in values)
    return write_field(3, write_field(1, packed) if values else b"")


def example_bytes(features: dict[str, tuple[str | None, list]]) -> bytes:
    """A serialized tf.Example holding `features` (name -> (kind, values))."""
    entries = b"".join(write_field(1, write_field(1, name.encode("utf-8", "surrogateescape"))
                              + write_field(2, _feature_bytes(kind, values)))
                       for name, (kind, values) in features.items())
    return write_field(1, entries) if features else b""


# ------------------------------------------------------------------------------------------------
# The request: FillClassifyRegressRequestFromJson
# ------------------------------------------------------------------------------------------------

class _Bad(Exception):
    pass


def _is_b64(v) -> bool:
    return isinstance(v, JObj) and len(v.members) == 1 and v.members[0][0] == "b64" \
        and isinstance(v.members[0][1], str)


def _add_value(val, name: str, feat: list, version: tuple[int, int]) -> None:
    """AddValueToFeature: `feat` is [kind, values]; the first value fixes the kind."""
    def need(kind: str) -> None:
        if feat[0] is not None and feat[0] != kind:
            raise _Bad(f"Unexpected element type in feature: {name} expecting type: {feat[0]}")
        feat[0] = kind

    if val is None or isinstance(val, list) or (isinstance(val, JObj) and not _is_b64(val)):
        raise _Bad(f"Feature: {name} has element with unexpected JSON type: {json_type(val)}")
    if val is True or val is False:
        need("int64")
        feat[1].append(1 if val else 0)
    elif isinstance(val, JObj):
        need("bytes")
        decoded = base64_unescape(encode_str(val.members[0][1]))
        if decoded is None:
            raise _Bad("Unable to base64 decode")
        feat[1].append(decoded)
    elif isinstance(val, str):
        need("bytes")
        feat[1].append(encode_str(val))
    elif isinstance(val, float):
        need("float")
        feat[1].append(float(np.float32(val)) if abs(val) <= 3.4028234663852886e38 else val)
    else:  # an integer literal: rapidjson keeps it as int64 or uint64 (or a double beyond)
        need("int64")
        if val > _INT64_MAX:
            t = "_t" if version >= _UINT64_T_SINCE else ""
            raise _Bad(f"Feature: {name} has uint64{t} element. Only int64{t} is supported.")
        feat[1].append(int(val))


def _example(val, version: tuple[int, int]) -> dict[str, tuple[str | None, list]]:
    """MakeExampleFromJsonObject."""
    if not isinstance(val, JObj):
        raise _Bad(f"Example must be JSON object but got JSON {json_type(val)}")
    out: dict[str, tuple[str | None, list]] = {}
    for name, content in val.members:
        feat: list = [None, []]
        for item in (content if isinstance(content, list) else [content]):
            _add_value(item, name, feat, version)
        out.pop(name, None)  # a repeated key replaces the earlier one
        out[name] = (feat[0], feat[1])
    return out


def parse_examples_request(body: str | bytes, method: str, *,
                           tfs_version: str | tuple[int, int] | None = None
                           ) -> ExamplesRequest | tfserving.TfsParse:
    """What TF Serving makes of a Classify/Regress body: the request, or its error answer (a
    failed TfsParse). Never raises."""
    version = tfserving.parse_tfs_version(tfs_version)
    read = tfserving.read_json_document(body, tfs_version=version)
    if read.error is not None:
        return read.error

    def fail(message: str) -> tfserving.TfsParse:
        return tfserving.invalid_argument(message, tfs_version=version, fmt=method,
                                          warnings=read.warnings)

    doc = read.doc
    name = ""
    if doc.has("signature_name"):
        sig_val = doc.find("signature_name")
        if not isinstance(sig_val, str):
            return fail(f"JSON Value: {read.debug(doc)} not formatted correctly. "
                        "'signature_name' key must be a string value.")
        name = sig_val
    try:
        context = _example(doc.find("context"), version) if doc.has("context") else None
        if not doc.has("examples"):
            # The text says "classify" for regress too (json_tensor.cc).
            return fail(read.format_error("When method is classify, key 'examples' is expected "
                                          "and was not found"))
        examples = doc.find("examples")
        if not isinstance(examples, list):
            return fail(read.format_error("Expecting 'examples' value to be an list/array"))
        if not examples:
            return fail(read.format_error("'examples' value is an empty array"))
        prefix = example_bytes(context) if context is not None else b""
        serialized = [prefix + example_bytes(_example(v, version)) for v in examples]
    except _Bad as e:
        return fail(str(e))
    return ExamplesRequest(method, name or DEFAULT_SIGNATURE, serialized)


# ------------------------------------------------------------------------------------------------
# The signature: classifier.cc / regressor.cc
# ------------------------------------------------------------------------------------------------

def _shape_text(spec, pad: str) -> str:
    if spec.shape is None:
        return f"{pad}tensor_shape {{\n{pad}  unknown_rank: true\n{pad}}}\n"
    dims = "".join(f"{pad}  dim {{\n{pad}    size: {int(d)}\n{pad}  }}\n" for d in spec.shape)
    return f"{pad}tensor_shape {{\n{dims}{pad}}}\n"


def signature_debug_string(sig: Signature) -> str:
    """SignatureDef::DebugString() (protobuf text format; map entries sorted by key)."""
    out = []
    for field_name, specs in (("inputs", sig.inputs), ("outputs", sig.outputs)):
        for key in sorted(specs):
            spec = specs[key]
            name = f'      name: "{spec.tensor_name}"\n' if spec.tensor_name else ""
            out.append(f'{field_name} {{\n  key: "{key}"\n  value {{\n{name}'
                       f"    dtype: {dtype_enum_name(spec.dtype)}\n"
                       + _shape_text(spec, "    ") + "  }\n}\n")
    if sig.method_name:
        out.append(f'method_name: "{sig.method_name}"\n')
    return "".join(out).replace("      name:", "    name:")


def signature_problem(sig: Signature | None, requested: str, method: str, *,
                      tfs_version: str | tuple[int, int] | None = None) -> str | None:
    """TF Serving's INVALID_ARGUMENT message when `sig` cannot serve `method`, else None."""
    version = tfserving.parse_tfs_version(tfs_version)
    kind = "classification" if method == "classify" else "regression"
    if sig is None:
        return f"No signature was found with the name: {requested}"
    if version < _METHOD_CHECK_BEFORE and sig.method_name != METHOD_NAMES[method]:
        return (f"Expected {kind} signature method_name to be {METHOD_NAMES[method]}. "
                f"Was: {sig.method_name}")
    if len(sig.inputs) != 1:
        return "Expected one input Tensor."
    if method == "classify" and len(sig.outputs) not in (1, 2):
        return f"Expected one or two output Tensors, found {len(sig.outputs)}"
    if method == "regress" and len(sig.outputs) != 1:
        return "Expected one output Tensor."
    if "inputs" not in sig.inputs:
        return f"No {kind} inputs found in SignatureDef: {signature_debug_string(sig)}"
    if method == "classify" and not ({"classes", "scores"} & set(sig.outputs)):
        return ('Expected classification signature outputs to contain at least one of '
                f'"classes" or "scores". Signature was: {signature_debug_string(sig)}')
    if method == "regress" and "outputs" not in sig.outputs:
        return f"No regression outputs found in SignatureDef: {signature_debug_string(sig)}"
    return None


# ------------------------------------------------------------------------------------------------
# The answer: PostProcess* and MakeJsonFrom*Result
# ------------------------------------------------------------------------------------------------

class ResultError(Exception):
    """TF Serving's INVALID_ARGUMENT when the outputs do not fit the method."""


def _shape_debug(arr: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in arr.shape) + "]"


_DT = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32", "int64": "DT_INT64",
       "object": "DT_STRING", "bool": "DT_BOOL", "float16": "DT_HALF"}


def _dt(arr: np.ndarray) -> str:
    if arr.dtype.kind in "OSU":
        return "DT_STRING"
    return _DT.get(str(arr.dtype), "DT_" + str(arr.dtype).upper())


def _decimal(v: float) -> bytes:
    return write_decimal(float(v), float32=True).encode()


def regress_json(outputs: dict[str, np.ndarray], n: int) -> str:
    """PostProcessRegressionResult + MakeJsonFromRegressionResult."""
    out = np.asarray(outputs["outputs"])
    if not (out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)):
        raise ResultError("Expected output Tensor shape to be either [batch_size] or "
                          f"[batch_size, 1] but got {_shape_debug(out)}")
    if out.shape[0] != n:
        raise ResultError(f"Input batch size did not match output batch size: {n} vs. "
                          f"{out.shape[0]}")
    if _dt(out) != "DT_FLOAT":
        raise ResultError(f"Expected output Tensor of DT_FLOAT.  Got: {_dt(out)}")
    w = PrettyWriter()
    w.start(False)
    w.string(b"results")
    w.single_line = True
    w.start(True)
    for v in out.reshape(-1).tolist():
        w.raw(_decimal(v))
    w.end(True)
    w.end(False)
    return bytes(w.buf).decode("utf-8", "replace")


def classify_json(outputs: dict[str, np.ndarray], n: int) -> str:
    """PostProcessClassificationResult + MakeJsonFromClassificationResult."""
    classes = np.asarray(outputs["classes"]) if "classes" in outputs else None
    scores = np.asarray(outputs["scores"]) if "scores" in outputs else None
    for what, arr, dt in (("classes", classes, "DT_STRING"), ("scores", scores, "DT_FLOAT")):
        if arr is None:
            continue
        if arr.ndim != 2:
            raise ResultError("Expected Tensor shape: [batch_size num_classes] but got "
                              f"{_shape_debug(arr)}")
        if _dt(arr) != dt:
            raise ResultError(f"Expected {what} Tensor of {dt}. Got: {_dt(arr)}")
        if arr.shape[0] != n:
            raise ResultError(f"Expected {what} output batch size of {n}. Got: {arr.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ResultError("Tensors class and score should match in dim_size(1). Got "
                          f"{classes.shape[1]} vs. {scores.shape[1]}")
    k = (classes if classes is not None else scores).shape[1] if (
        classes is not None or scores is not None) else 0
    w = PrettyWriter()
    w.start(False)
    w.string(b"results")
    w.start(True)
    for i in range(n):
        w.single_line = True
        w.start(True)
        for c in range(k):
            w.start(True)
            label = classes[i, c] if classes is not None else b""
            w.string(label if isinstance(label, bytes) else encode_str(str(label)))
            w.raw(_decimal(scores[i, c] if scores is not None else 0.0))
            w.end(True)
        w.end(True)
        w.single_line = False
    w.end(True)
    w.end(False)
    return bytes(w.buf).decode("utf-8", "replace")


def result_json(method: str, outputs: dict[str, np.ndarray], n: int) -> str:
    """The answer for the model's outputs; raises ResultError as TF Serving fails."""
    if method == "regress":
        return regress_json(outputs, n)
    return classify_json(outputs, n)


def placeholder_json(method: str, sig: Signature, n: int) -> str:
    """A 200 answer of the right structure when no model runs (validate)."""
    if method == "regress":
        return '{\n    "results": [' + ", ".join(["0.0"] * n) + "]\n}"
    spec = sig.outputs.get("scores") or sig.outputs.get("classes")
    k = spec.shape[1] if spec is not None and spec.shape and len(spec.shape) > 1 and \
        spec.shape[1] > 0 else 1
    row = "[" + ", ".join(['["", 0.0]'] * k) + "]"
    return '{\n    "results": [\n        ' + ",\n        ".join([row] * n) + "\n    ]\n}"
