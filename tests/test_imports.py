"""The package's import graph, read from the source (ast): no cycles, no private cross-imports.

Every import counts, including the lazy ones inside functions (a cycle through a function-level
import is still a cycle: it only fails later). Imports under `if TYPE_CHECKING:` do not run and
do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "kdiag"
API_FUNCTIONS = {"inspect", "sample", "validate", "replay", "probe", "check", "compare"}


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """module -> the kdiag modules it imports; and (importer, module, name) of private names."""
    modules = {module_name(p)[0]: p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[tuple[str, str, str]] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                edges[mod].update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_package else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source != "kdiag" and not source.startswith("kdiag."):
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in modules:
                        edges[mod].add(submodule)
                        continue
                    edges[mod].add(source)
                    name = alias.name
                    if name.startswith("_") and not name.startswith("__") and source != mod:
                        private.append((mod, source, name))
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walker_sees_a_cycle_through_a_lazy_import():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_no_module_imports_a_private_name_of_another_module():
    _, private = import_graph()
    assert private == []


def test_no_command_imports_another_command():
    edges, _ = import_graph()
    for mod, targets in edges.items():
        if mod.startswith("kdiag.commands."):
            others = {t for t in targets if t.startswith("kdiag.commands.")
                      and t != "kdiag.commands._common"}
            assert others == set(), mod


def test_no_subpackage_or_module_shadows_an_api_function():
    # kdiag.validate must stay the function: a kdiag/validate/ package would replace it.
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                        if p.is_dir()}
    assert names & API_FUNCTIONS == set()


def test_the_library_never_imports_the_cli():
    edges, _ = import_graph()
    for mod, targets in edges.items():
        if not (mod.startswith("kdiag.commands") or mod in ("kdiag.cli", "kdiag.__main__")):
            assert not {t for t in targets if t.startswith("kdiag.commands") or t == "kdiag.cli"}, mod
