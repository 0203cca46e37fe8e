"""Static check of a user's custom-objects module: which Model classes override predict-time logic.

Keras runs `predict()`, `predict_step()` and `__call__` overrides only in Python. An exported
SavedModel contains the traced `call()` only, so any preprocessing in those overrides never runs
behind TF Serving: the classic "works in the notebook, fails at the endpoint". The module is read
with `ast`; nothing in it is executed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import KdiagError

PYTHON_ONLY_METHODS = ("predict", "predict_step", "__call__", "predict_on_batch")


@dataclass
class ClassOverride:
    class_name: str
    methods: list[str]  # Python-only methods it defines or inherits within the module
    call_args: list[str]  # call()'s argument names (Keras's own input name for subclassed models)


def scan_module(path: Path) -> list[ClassOverride]:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KdiagError(f"--custom-objects {path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KdiagError(f"--custom-objects {path}: cannot read it ({e}).") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise KdiagError(f"--custom-objects {path} does not compile (line {e.lineno}: {e.msg}).") from None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def own_methods(c: ast.ClassDef) -> dict[str, ast.FunctionDef]:
        return {f.name: f for f in c.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}

    def resolve(c: ast.ClassDef, seen: set[str]) -> dict[str, ast.FunctionDef]:
        methods: dict[str, ast.FunctionDef] = {}
        for base in c.bases:
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                methods.update(resolve(classes[base.id], seen | {base.id}))
        methods.update(own_methods(c))
        return methods

    out = []
    for name, c in classes.items():
        methods = resolve(c, {name})
        python_only = [m for m in PYTHON_ONLY_METHODS if m in methods]
        call = methods.get("call")
        args = [a.arg for a in call.args.args[1:]] if call is not None else []
        if python_only or call is not None:
            out.append(ClassOverride(class_name=name, methods=python_only, call_args=args))
    return out
