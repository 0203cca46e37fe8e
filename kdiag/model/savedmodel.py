"""Read SavedModel signatures straight from `saved_model.pb` (no TensorFlow).

Field numbers are those of tensorflow/core/protobuf/{saved_model,meta_graph}.proto and
tensorflow/core/framework/tensor_shape.proto, which TensorFlow keeps stable for compatibility.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.limits import Limits
from kdiag.model.graph_trust import FileOp, scan_graph
from kdiag.model.protobuf import (
    ProtobufError,
    as_bytes,
    as_int,
    as_str,
    iter_fields,
    to_int64,
)
from kdiag.model.regular_file import read_regular_file
from kdiag.model.signature import DTYPE_NAMES, Signature, TensorSpec

SERVE_TAG = "serve"
# TF1 collections holding the ops the loader runs after restoring (saved_model constants).
INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "main_op")
# Ops whose presence says something about how the signature's inputs must be sent.
IMAGE_DECODE_OPS = ("DecodeJpeg", "DecodePng", "DecodeImage", "DecodeBmp", "DecodeGif",
                    "DecodeAndCropJpeg")
EXAMPLE_PARSE_OPS = ("ParseExampleV2", "ParseExample", "ParseSingleExample")


@dataclass
class MetaGraph:
    tags: list[str]
    signatures: list[Signature]
    tensorflow_version: str | None
    ops: set[str] = field(default_factory=set)
    file_ops: list[FileOp] = field(default_factory=list)  # what its signatures can run


@dataclass
class SavedModelInfo:
    meta_graphs: list[MetaGraph]
    graph_notes: list[str]

    def serving(self) -> MetaGraph | None:
        """TF Serving loads the meta graph tagged exactly {"serve"}."""
        for mg in self.meta_graphs:
            if set(mg.tags) == {SERVE_TAG}:
                return mg
        return None


def _tensor_shape(buf: memoryview) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown_rank = False
    for f, _, v in iter_fields(buf):
        if f == 2:
            size = 0
            for df, _, dv in iter_fields(as_bytes(v)):
                if df == 1:
                    size = to_int64(as_int(dv))
            dims.append(-1 if size < 0 else size)
        elif f == 3:
            unknown_rank = bool(as_int(v))
    return None if unknown_rank else tuple(dims)


def _tensor_info(buf: memoryview) -> TensorSpec:
    name = None
    dtype = 0
    shape: tuple[int, ...] | None = None
    seen_shape = False
    kind = "dense"
    for f, _, v in iter_fields(buf):
        if f == 1:
            name = as_str(v)
        elif f == 2:
            dtype = as_int(v)
        elif f == 3:
            shape = _tensor_shape(as_bytes(v))
            seen_shape = True
        elif f == 4:
            kind = "sparse"
        elif f == 5:
            kind = "composite"
    if not seen_shape:
        shape = None  # a TensorInfo without a shape: unknown rank
    dtype_name = DTYPE_NAMES.get(dtype, f"dtype_{dtype}")
    if kind != "dense":
        dtype_name = f"{dtype_name}"  # sparse/composite inputs are rare in serving; keep the dtype
    return TensorSpec(dtype=dtype_name, shape=shape, tensor_name=name)


def _map_entry(buf: memoryview) -> tuple[str, memoryview]:
    key = ""
    value = memoryview(b"")
    for f, _, v in iter_fields(buf):
        if f == 1:
            key = as_str(v)
        elif f == 2:
            value = as_bytes(v)
    return key, value


def _signature_def(name: str, buf: memoryview) -> Signature:
    inputs: dict[str, TensorSpec] = {}
    outputs: dict[str, TensorSpec] = {}
    method = ""
    for f, _, v in iter_fields(buf):
        if f in (1, 2):
            k, tv = _map_entry(as_bytes(v))
            (inputs if f == 1 else outputs)[k] = _tensor_info(tv)
        elif f == 3:
            method = as_str(v)
    # Signature maps are protobuf maps: the serialised order is not meaningful. TF Serving and
    # saved_model_cli present them sorted by key, and so does kdiag.
    return Signature(name=name, method_name=method,
                     inputs=dict(sorted(inputs.items())), outputs=dict(sorted(outputs.items())))


def _op_names(op_list: memoryview) -> set[str]:
    ops = set()
    for f, _, v in iter_fields(op_list):
        if f == 1:
            for of, _, ov in iter_fields(as_bytes(v)):
                if of == 1:
                    ops.add(as_str(ov))
                    break
    return ops


def _meta_graph(buf: memoryview) -> MetaGraph:
    tags: list[str] = []
    sigs: list[Signature] = []
    tf_version = None
    ops: set[str] = set()
    graph_def: memoryview | None = None
    init_nodes: list[str] = []
    for f, _, v in iter_fields(buf):
        if f == 1:  # MetaInfoDef
            for mf, _, mv in iter_fields(as_bytes(v)):
                if mf == 4:
                    tags.append(as_str(mv))
                elif mf == 5:
                    tf_version = as_str(mv)
                elif mf == 2:
                    ops |= _op_names(as_bytes(mv))
        elif f == 2:
            graph_def = as_bytes(v)
        elif f == 4:  # collection_def: TF1 main/init ops run when the model loads
            k, cv = _map_entry(as_bytes(v))
            if k in INIT_COLLECTIONS:
                for cf, _, nl in iter_fields(cv):
                    if cf == 1:  # node_list.value
                        init_nodes += [as_str(n) for nf, _, n in iter_fields(as_bytes(nl))
                                       if nf == 1]
        elif f == 5:
            k, sv = _map_entry(as_bytes(v))
            sigs.append(_signature_def(k, sv))
    if graph_def is not None:
        # Not every exporter writes stripped_op_list; an op name's bytes in the graph are a
        # cheap, sufficient sign that the op is used.
        raw = graph_def.tobytes()
        for op in IMAGE_DECODE_OPS + EXAMPLE_PARSE_OPS:
            if op.encode() in raw:
                ops.add(op)
    file_ops: list[FileOp] = []
    if graph_def is not None and SERVE_TAG in tags:
        roots = {s.name: [t.tensor_name for t in (*s.inputs.values(), *s.outputs.values())
                          if t.tensor_name] for s in sigs}
        if init_nodes:
            roots["__init_op"] = init_nodes
        file_ops = scan_graph(graph_def, roots)
    sigs.sort(key=lambda s: (s.name != "serving_default", s.name))
    return MetaGraph(tags=tags, signatures=sigs, tensorflow_version=tf_version, ops=ops,
                     file_ops=file_ops)


def parse_saved_model(data: bytes, source: str = "saved_model.pb") -> SavedModelInfo:
    """Decode the parts of a SavedModel proto kdiag needs; raise KdiagError when it is not one."""
    if not data:
        raise KdiagError(f"{source} is empty: the export did not finish. Export the model again.")
    try:
        metas = []
        for f, w, v in iter_fields(data):
            if f == 2 and w == 2:
                metas.append(_meta_graph(as_bytes(v)))
            elif f == 1 and w != 0:
                raise ProtobufError("field 1 is not a version number")
            elif f > 2:
                raise ProtobufError(f"unexpected top-level field {f}")
    except (ProtobufError, ValueError, TypeError, RecursionError) as e:
        # ValueError/TypeError: a field of the wrong kind somewhere kdiag did not expect one
        raise KdiagError(
            f"{source} is not a readable SavedModel ({e}): the file is corrupt or truncated, "
            "or it is not a saved_model.pb. Export the model again (model.export(path) in "
            "Keras 3, tf.saved_model.save otherwise)."
        ) from None
    if not metas:
        raise KdiagError(f"{source} holds no meta graph: it is not a SavedModel export.")
    notes = []
    serving = next((m for m in metas if set(m.tags) == {SERVE_TAG}), None)
    if serving is not None:
        decodes = sorted(op for op in serving.ops if op in IMAGE_DECODE_OPS)
        parses = sorted(op for op in serving.ops if op in EXAMPLE_PARSE_OPS)
        if decodes:
            notes.append("decodes images in the graph (" + ", ".join(decodes) + ")")
        if parses:
            notes.append("parses tf.Example protos in the graph (" + ", ".join(parses) + ")")
        sigs = [Signature(s.name, s.method_name, s.inputs, s.outputs, tuple(notes))
                for s in serving.signatures]
        serving.signatures = sigs
    return SavedModelInfo(meta_graphs=metas, graph_notes=notes)


def read_saved_model(path: Path, limits: Limits | None = None) -> SavedModelInfo:
    pb = path / "saved_model.pb" if path.is_dir() else path
    return parse_saved_model(read_regular_file(pb, "graph_bytes", limits), str(pb))
