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
from kdiag.model.graphdef import GraphNode, read_library, read_node
from kdiag.model.protobuf import (
    ProtobufError,
    as_bytes,
    as_int,
    as_str,
    iter_fields,
    read_varint,
    to_int64,
)
from kdiag.model.regular_file import read_regular_file
from kdiag.model.signature import DTYPE_NAMES, ExampleFeature, Signature, TensorSpec

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
    # The object graph holds Keras 3 layers and variables: tf.saved_model.save of a Keras 3
    # model (or of a tf.Module holding one). See keras3_layers_tracked.
    keras3_layers: bool = False
    file_ops: list[FileOp] = field(default_factory=list)  # what its signatures can run
    example_features: tuple[ExampleFeature, ...] = ()


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


# Attributes every Keras 3 Layer tracks (keras/src/layers/layer.py) and tf.saved_model.save
# writes as children of the layer's object-graph node. model.export() and ExportArchive track
# only lists of variables, and tf.keras (Keras 2) layers are saved as "_tf_keras_layer" objects.
_KERAS3_LAYER_CHILDREN = frozenset({"_inbound_nodes", "_outbound_nodes", "_build_shapes_dict"})


def keras3_layers_tracked(object_graph: memoryview) -> bool:
    """Whether a SavedObjectGraph (MetaGraphDef field 7) tracks Keras 3 Layer objects and at
    least one variable.

    That is what tf.saved_model.save writes for a Keras 3 model or a tf.Module holding one, and
    TF Serving's loader then restores none of the variables the signature reads: every request
    fails with "Could not find variable ..." (tensorflow/serving#2250, keras-team/keras#19274,
    #20095; reproduced by fixtures custom/tfsave, two_inputs_tfsave). SavedObjectGraph.nodes
    is field 1; SavedObject.children 1 (ObjectReference.local_name 2), user_object 4 and
    variable 7 (tensorflow/core/protobuf/saved_object_graph.proto).
    """
    layer = variable = False
    for f, _, v in iter_fields(object_graph):
        if f != 1:
            continue
        names = set()
        for nf, _, nv in iter_fields(as_bytes(v)):
            if nf == 7:
                variable = True
            elif nf == 1 and not layer:
                for rf, _, rv in iter_fields(as_bytes(nv)):
                    if rf == 2:
                        names.add(bytes(rv))
        if not layer and len(names & _KERAS3_LAYER_CHILDREN_B) >= 2:
            layer = True
        if layer and variable:
            return True
    return False


_KERAS3_LAYER_CHILDREN_B = frozenset(n.encode() for n in _KERAS3_LAYER_CHILDREN)


# -- the tf.Example parser's feature spec ------------------------------------------------------
# GraphDef: node=1, library=2 (FunctionDefLibrary: function=1; FunctionDef: node_def=3).
# NodeDef: name=1, op=2, input=3, attr=5 (map<string, AttrValue>). AttrValue: list=1, s=2, i=3,
# type=6, shape=7, tensor=8; ListValue: s=2, i=3, type=6, shape=7. TensorProto: tensor_shape=2,
# string_val=8 (tensorflow/core/framework/{graph,function,node_def,attr_value,tensor}.proto).
_EXAMPLE_DTYPES = {"float32": "float32", "int64": "int64", "string": "string"}


def _varints(f_wire: int, v: int | memoryview) -> list[int]:
    """A repeated int field: one varint, or several packed into a length-delimited field."""
    if f_wire == 0:
        return [int(v)]  # type: ignore[arg-type]
    out, pos, data = [], 0, as_bytes(v)
    while pos < len(data):
        n, pos = read_varint(data, pos)
        out.append(to_int64(n))
    return out


def _attr_list(av: memoryview, field_no: int) -> list:
    """The values of AttrValue.list's field `field_no` (s=2: str, type=6: int, shape=7: shape)."""
    out: list = []
    for f, _, v in iter_fields(av):
        if f != 1:
            continue
        for lf, lw, lv in iter_fields(as_bytes(v)):
            if lf == field_no == 2:
                out.append(as_str(lv))
            elif lf == field_no == 7:
                out.append(_tensor_shape(as_bytes(lv)))
            elif lf == field_no and field_no in (3, 6):
                out += _varints(lw, lv)
    return out


def _attr_int(av: memoryview, field_no: int) -> int | None:
    for f, _, v in iter_fields(av):
        if f == field_no and isinstance(v, int):
            return to_int64(v)
    return None


def _const_tensor(node: GraphNode | None) -> tuple[list[str], tuple[int, ...] | None]:
    """A Const node's string values and shape (the parse op's keys and defaults are Consts)."""
    if node is None or node.op != "Const" or "value" not in node.attrs:
        return [], None
    values: list[str] = []
    shape: tuple[int, ...] | None = None
    for f, _, v in iter_fields(node.attrs["value"]):
        if f == 8:
            for tf_, _, tv in iter_fields(as_bytes(v)):
                if tf_ == 2:
                    shape = _tensor_shape(as_bytes(tv))
                elif tf_ == 8:
                    values.append(bytes(as_bytes(tv)).decode("utf-8", "replace"))
    return values, shape


def _parse_op_features(node: GraphNode, scope: dict[str, GraphNode]) -> list[ExampleFeature]:
    def src(i: int) -> GraphNode | None:
        return scope.get(node.inputs[i].split(":")[0].lstrip("^")) if i < len(node.inputs) \
            else None

    tdense = [DTYPE_NAMES.get(t, "") for t in _attr_list(node.attrs.get("Tdense", memoryview(b"")), 6)]
    shapes = _attr_list(node.attrs.get("dense_shapes", memoryview(b"")), 7)
    sparse_types = [DTYPE_NAMES.get(t, "") for t in
                    _attr_list(node.attrs.get("sparse_types", memoryview(b"")), 6)]
    ragged_types = [DTYPE_NAMES.get(t, "") for t in
                    _attr_list(node.attrs.get("ragged_value_types", memoryview(b"")), 6)]
    if node.op == "ParseExampleV2":
        # inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...
        sparse_keys, dense_keys, ragged_keys = (_const_tensor(src(i))[0] for i in (2, 3, 4))
        first_default = 5
    elif node.op == "ParseExample":
        # inputs: serialized, names, sparse_keys x Nsparse, dense_keys x Ndense, defaults...
        ns = _attr_int(node.attrs.get("Nsparse", memoryview(b"")), 3) or 0
        nd = _attr_int(node.attrs.get("Ndense", memoryview(b"")), 3) or 0
        sparse_keys = [k for i in range(2, 2 + ns) for k in _const_tensor(src(i))[0]]
        dense_keys = [k for i in range(2 + ns, 2 + ns + nd) for k in _const_tensor(src(i))[0]]
        ragged_keys, first_default = [], 2 + ns + nd
    else:  # ParseSingleExample: the keys are attrs; inputs: serialized, dense_defaults...
        sparse_keys = _attr_list(node.attrs.get("sparse_keys", memoryview(b"")), 2)
        dense_keys = _attr_list(node.attrs.get("dense_keys", memoryview(b"")), 2)
        ragged_keys, first_default = [], 1
    out = []
    for i, key in enumerate(dense_keys):
        dtype = tdense[i] if i < len(tdense) else ""
        shape = shapes[i] if i < len(shapes) else None
        # No default is an empty Const; a default is a non-empty Const or computed (Reshape).
        default = src(first_default + i)
        _, dshape = _const_tensor(default)
        empty_default = default is not None and default.op == "Const" and \
            dshape is not None and 0 in dshape
        out.append(ExampleFeature(key, _EXAMPLE_DTYPES.get(dtype, dtype), shape,
                                  required=empty_default))
    for keys, types in ((sparse_keys, sparse_types), (ragged_keys, ragged_types)):
        for key, dtype in zip(keys, types, strict=False):
            out.append(ExampleFeature(key, _EXAMPLE_DTYPES.get(dtype, dtype), None, False))
    return out


def example_features(graph_def: memoryview) -> tuple[ExampleFeature, ...]:
    """The feature spec of the first tf.Example parse op in the graph or its functions.

    Estimator-era and tf.Module exports parse serialized Examples inside the graph; the feature
    names are the parse op's constant inputs, not signature inputs (field-notes §4)."""
    scopes: list[list[GraphNode]] = [[]]
    for f, w, v in iter_fields(graph_def):
        if f == 1 and w == 2:
            scopes[0].append(read_node(as_bytes(v)))
        elif f == 2 and w == 2:
            scopes += list(read_library(as_bytes(v)).values())
    for nodes in scopes:
        scope = {n.name: n for n in nodes}
        for n in nodes:
            if n.op in EXAMPLE_PARSE_OPS:
                return tuple(_parse_op_features(n, scope))
    return ()


def _meta_graph(buf: memoryview) -> MetaGraph:
    tags: list[str] = []
    sigs: list[Signature] = []
    tf_version = None
    ops: set[str] = set()
    graph_def: memoryview | None = None
    keras3 = False
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
        elif f == 7:
            keras3 = keras3_layers_tracked(as_bytes(v))
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
    features: tuple[ExampleFeature, ...] = ()
    if graph_def is not None and ops & set(EXAMPLE_PARSE_OPS):
        try:
            features = example_features(graph_def)
        except ProtobufError:  # an unreadable parser spec only costs the tf.Example fix
            features = ()
    sigs.sort(key=lambda s: (s.name != "serving_default", s.name))
    return MetaGraph(tags=tags, signatures=sigs, tensorflow_version=tf_version, ops=ops,
                     keras3_layers=keras3, file_ops=file_ops, example_features=features)


def _examples_for(sig: Signature, features: tuple[ExampleFeature, ...]
                  ) -> tuple[ExampleFeature, ...]:
    """The parser's features belong to a signature whose one input is a string (the Examples)."""
    if len(sig.inputs) == 1 and next(iter(sig.inputs.values())).dtype == "string":
        return features
    return ()


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
        sigs = [Signature(s.name, s.method_name, s.inputs, s.outputs, tuple(notes),
                          _examples_for(s, serving.example_features))
                for s in serving.signatures]
        serving.signatures = sigs
    return SavedModelInfo(meta_graphs=metas, graph_notes=notes)


def read_saved_model(path: Path, limits: Limits | None = None) -> SavedModelInfo:
    pb = path / "saved_model.pb" if path.is_dir() else path
    return parse_saved_model(read_regular_file(pb, "graph_bytes", limits), str(pb))
