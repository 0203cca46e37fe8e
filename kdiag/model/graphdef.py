"""GraphDef nodes and function libraries, read without TensorFlow.

Field numbers: tensorflow/core/framework/{graph,node_def,function}.proto. GraphDef: node=1,
library=2; FunctionDefLibrary: function=1; FunctionDef: signature=1 (OpDef, name=1),
node_def=3; NodeDef: name=1, op=2, input=3, attr=5 (map<string, AttrValue>). Attribute values
stay undecoded: each reader decodes the few it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdiag.model.protobuf import as_bytes, as_str, iter_fields


@dataclass
class GraphNode:
    name: str
    op: str
    inputs: list[str]
    attrs: dict[str, memoryview]


def read_node(buf: memoryview) -> GraphNode:
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, memoryview] = {}
    for f, w, v in iter_fields(buf):
        if w != 2:
            continue
        if f == 1:
            name = as_str(v)
        elif f == 2:
            op = as_str(v)
        elif f == 3:
            inputs.append(as_str(v))
        elif f == 5:
            key, value = "", memoryview(b"")
            for ef, ew, ev in iter_fields(as_bytes(v)):
                if ef == 1 and ew == 2:
                    key = as_str(ev)
                elif ef == 2 and ew == 2:
                    value = ev  # type: ignore[assignment]
            attrs[key] = value
    return GraphNode(name, op, inputs, attrs)


def read_library(buf: memoryview) -> dict[str, list[GraphNode]]:
    """Function name -> its nodes."""
    functions: dict[str, list[GraphNode]] = {}
    for f, w, v in iter_fields(buf):
        if f != 1 or w != 2:  # FunctionDefLibrary.function
            continue
        name = ""
        nodes: list[GraphNode] = []
        for ff, fw, fv in iter_fields(v):
            if ff == 1 and fw == 2:  # OpDef signature: name is field 1
                for sf, sw, sv in iter_fields(fv):
                    if sf == 1 and sw == 2:
                        name = as_str(sv)
                        break
            elif ff == 3 and fw == 2:
                nodes.append(read_node(fv))  # type: ignore[arg-type]
        functions[name] = nodes
    return functions
