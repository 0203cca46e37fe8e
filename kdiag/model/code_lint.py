"""Static checks of code/inference.py: read with `ast`, never imported or run.

The container's Python service imports the module at start-up and uses `handler` if it exists,
otherwise both `input_handler` and `output_handler`; anything else raises NotImplementedError
("Handlers are not implemented correctly in user script.") and the endpoint fails its health
check (python_service.py in aws/deep-learning-containers and the legacy container).
"""

from __future__ import annotations

import ast

from kdiag.diagnosis.findings import Finding

TOOLKIT_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names.add(t.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            for a in node.names:
                names.add((a.asname or a.name).split(".")[0])
    return names


def lint_inference_py(source: str, where: str = "code/inference.py") -> list[Finding]:
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as e:
        return [Finding(
            "KD040", "error", "artifact",
            f"{where} does not compile (line {e.lineno}: {e.msg}): the container fails to import "
            "it at start-up and the endpoint never becomes healthy.",
            f"Fix the syntax error, then check with: python -m py_compile {where}",
        )]
    names = top_level_names(tree)
    if "handler" in names:
        return []
    if {"input_handler", "output_handler"} <= names:
        return []
    toolkit = [n for n in TOOLKIT_FUNCTIONS if n in names]
    if toolkit:
        return [Finding(
            "KD041", "error", "artifact",
            f"{where} defines {', '.join(toolkit)} (the sagemaker-inference-toolkit contract of "
            "the PyTorch/MXNet containers): the TF Serving container does not call them and "
            "fails at start-up with \"Handlers are not implemented correctly in user script.\"",
            "Rename to input_handler(data, context) and output_handler(response, context), or "
            "one handler(data, context) returning (body, content_type).",
        )]
    have = sorted(names & {"input_handler", "output_handler"})
    return [Finding(
        "KD040", "error", "artifact",
        f"{where} defines {'only ' + ' and '.join(have) if have else 'neither handler nor input_handler/output_handler'}: "
        "the container raises \"Handlers are not implemented correctly in user script.\" at "
        "start-up and the endpoint fails its health check.",
        "Define handler(data, context), or both input_handler(data, context) and "
        "output_handler(response, context).",
    )]
