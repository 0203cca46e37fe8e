"""A SavedModel is a program: which file-touching ops its serving functions can run.

TF Serving runs, at load, the model's init op (`__saved_model_init_op`, or a TF1 main op), and for
each request the nodes the signature's output tensors depend on: in TF2 exports, a
`StatefulPartitionedCall` into a function of the graph's function library, which may call other
functions (through call ops, `f`/`then_branch`/`body` attributes, or ops named after a function).
kdiag walks exactly that: backwards from the signatures' tensors in the main graph, then every
node of every function reached, transitively. The saver's own save/restore functions hang off
`saver_filename`, not off a signature, so the SaveV2/RestoreV2 every export holds is not flagged.

Op names: tensorflow/core/ops/*.cc (io_ops, dataset_ops, summary_ops, logging_ops, debug_ops,
lookup_ops, experimental_dataset_ops). Field numbers: tensorflow/core/framework/{graph,node_def,
function,attr_value,op_def}.proto and protobuf/meta_graph.proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError
from kdiag.model.graphdef import GraphNode as _Node
from kdiag.model.graphdef import read_library as _library
from kdiag.model.graphdef import read_node as _node
from kdiag.model.protobuf import as_str, iter_fields

# Ops that create, overwrite or delete files, or list folders: refused unless trusted.
WRITE_OPS = frozenset({
    "WriteFile", "DeleteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteRawProtoSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "ImportEvent", "FlushSummaryWriter", "CloseSummaryWriter",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset",
    "SaveDatasetV2", "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader",
})
LIST_OPS = frozenset({"MatchingFiles", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset"})
# Ops that read files the path names: reported as a warning, run.
READ_OPS = frozenset({
    "ReadFile", "Restore", "RestoreV2", "RestoreSlice", "LoadAndRemapMatrix",
    "GenerateVocabRemapping", "ImmutableConst", "TFRecordDataset", "TFRecordDatasetV2",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "TextLineDataset",
    "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "LoadDataset",
    "TFRecordReader", "TFRecordReaderV2", "TextLineReader", "TextLineReaderV2",
    "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "WholeFileReader",
    "WholeFileReaderV2", "LMDBReader", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "DecodeProtoV2",
})
_FILE_STREAM_OPS = frozenset({"PrintV2"})  # writes to a file when output_stream is file://...
_ALL = WRITE_OPS | LIST_OPS | READ_OPS | _FILE_STREAM_OPS
TRUST_FLAG = "--trust-model"


@dataclass(frozen=True)
class FileOp:
    op: str
    node: str
    function: str  # the library function holding the node, or "(main graph)"
    access: str  # "write" | "list" | "read"
    reached_from: str  # the signature (or init op) whose run reaches it

    @property
    def refused(self) -> bool:
        return self.access in ("write", "list")


def _access(op: str, attrs: dict[str, memoryview]) -> str | None:
    if op in WRITE_OPS:
        return "write"
    if op in LIST_OPS:
        return "list"
    if op in READ_OPS:
        if op == "DecodeProtoV2":  # only with descriptor_source naming a file
            src = attrs.get("descriptor_source")
            text = _attr_string(src) if src is not None else ""
            return "read" if text not in ("", "local://") else None
        return "read"
    if op in _FILE_STREAM_OPS:
        stream = attrs.get("output_stream")
        text = _attr_string(stream) if stream is not None else ""
        return "write" if text.startswith("file://") else None
    return None


def _attr_string(value: memoryview) -> str:
    for f, w, v in iter_fields(value):
        if f == 2 and w == 2:
            return bytes(v).decode("utf-8", "replace")
    return ""


def _called_functions(node: _Node, library: dict[str, list[_Node]]) -> list[str]:
    """Functions a node calls: an op named after a function, or func attributes."""
    out = [node.op] if node.op in library else []
    for value in node.attrs.values():
        for f, w, v in iter_fields(value):
            if f == 10 and w == 2:  # AttrValue.func: NameAttrList
                out += [as_str(nv) for nf, nw, nv in iter_fields(v) if nf == 1 and nw == 2]
            elif f == 1 and w == 2:  # AttrValue.list: ListValue.func (9)
                for lf, lw, lv in iter_fields(v):
                    if lf == 9 and lw == 2:
                        out += [as_str(nv) for nf, nw, nv in iter_fields(lv)
                                if nf == 1 and nw == 2]
    return out


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":", 1)[0]


def scan_graph(graph_def: memoryview, roots: dict[str, list[str]]) -> list[FileOp]:
    """File-touching ops each root (a name -> tensor or node names) can run. Linear in nodes."""
    raw = graph_def.tobytes()
    if not any(op.encode() in raw for op in _ALL):
        return []  # the common case: no such op name anywhere, nothing to walk
    nodes: dict[str, _Node] = {}
    library: dict[str, list[_Node]] = {}
    for f, w, v in iter_fields(graph_def):
        if f == 1 and w == 2:
            n = _node(v)  # type: ignore[arg-type]
            nodes[n.name] = n
        elif f == 2 and w == 2:
            library = _library(v)  # type: ignore[arg-type]
    found: dict[tuple[str, str, str], FileOp] = {}
    for root, tensors in roots.items():
        seen_nodes: set[str] = set()
        seen_funcs: set[str] = set()
        stack = [_node_name(t) for t in tensors]
        funcs: list[str] = []
        while stack:  # main graph: backwards along inputs
            name = stack.pop()
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            _note(found, node, "(main graph)", root)
            funcs += _called_functions(node, library)
            stack += [_node_name(i) for i in node.inputs]
        while funcs:  # every node of every function reached
            fname = funcs.pop()
            if fname in seen_funcs or fname not in library:
                continue
            seen_funcs.add(fname)
            for node in library[fname]:
                _note(found, node, fname, root)
                funcs += _called_functions(node, library)
    return list(found.values())


def _note(found: dict, node: _Node, where: str, root: str) -> None:
    access = _access(node.op, node.attrs) if node.op in _ALL else None
    if access is not None:
        found.setdefault((node.op, node.name, where), FileOp(node.op, node.name, where, access,
                                                              root))


def file_op_findings(ops: list[FileOp], source: str) -> list[Finding]:
    out = []
    for op in ops:
        verb = {"write": "writes or deletes files", "list": "lists folders",
                "read": "reads files"}[op.access]
        when = "when the model loads" if op.reached_from.startswith("__") else \
            f"on every request to signature {op.reached_from!r}"
        if op.refused:
            out.append(Finding(
                "KD052", "error", "artifact",
                f"{source}: op {op.op} (node {op.node!r} in {op.function}) {verb} {when}. A "
                "SavedModel is a program: kdiag will not run it (replay, check, serve, probe "
                f"--fetch-model) unless you pass {TRUST_FLAG}.",
                "Remove file I/O from the serving function, or if you wrote this model and "
                f"trust it, pass {TRUST_FLAG}.",
            ))
        else:
            out.append(Finding(
                "KD053", "warning", "artifact",
                f"{source}: op {op.op} (node {op.node!r} in {op.function}) {verb} {when}: it "
                "can read any file the serving process can (and return it in a response).",
                "Make sure that is intended; read model files from assets/ at export time.",
            ))
    return out


class UntrustedGraph(KdiagError):
    """The model's serving functions write, delete or list files and --trust-model is off."""


_trusted = False
# One API call's own trust_model= (None: the process-wide setting).
_for_call: ContextVar[bool | None] = ContextVar("kdiag_trust_for_call", default=None)


def set_trust(trusted: bool) -> None:
    """The CLI's --trust-model, process-wide (every command that runs a graph honours it)."""
    global _trusted
    _trusted = trusted


def trusted() -> bool:
    call = _for_call.get()
    return _trusted if call is None else call


@contextmanager
def trust_for_call(trust: bool | None) -> Iterator[bool]:
    """`trust_model=` of one API call, for everything inside the block (None: unchanged);
    restored on exit so it never carries over to the next call."""
    if trust is None:
        yield trusted()
        return
    token = _for_call.set(bool(trust))
    try:
        yield bool(trust)
    finally:
        _for_call.reset(token)


def require_trusted(ops: list[FileOp], source: str, trust: bool | None = None) -> None:
    """Refuse to run a graph with refused file ops unless trusted: before any execution."""
    if trust if trust is not None else trusted():
        return
    bad = [o for o in ops if o.refused]
    if bad:
        listed = "; ".join(f"{o.op} ({o.access}) in {o.function}, reached from "
                           f"{o.reached_from}" for o in bad[:5])
        raise UntrustedGraph(
            f"{source} runs file-touching ops: {listed}. A SavedModel is a program and this "
            f"one writes, deletes or lists files; kdiag refuses to run it. If you trust the "
            f"model, pass {TRUST_FLAG}.")
