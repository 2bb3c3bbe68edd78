"""The package's imports flow one way: no module imports (even lazily, even only for type checking) a module that
imports it back, directly or through others. Read bottom-up, each module needs only the ones below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "wakaq"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every wakaq module `path` imports anywhere in its body (top level, functions, TYPE_CHECKING blocks)."""
    found: set[str] = set()
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    found.discard(this)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths} | {"wakaq._wakaq"}
    graph = {module_name(p): imports_of(p, modules) for p in paths}
    # NOTE: `wakaq/__init__.py` re-exports the public API; it is the top, and importing `wakaq.x` runs it first
    # anyway, so edges into the package itself say nothing about the layering
    for edges in graph.values():
        edges.discard("wakaq")
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_flow_one_way() -> None:
    graph = import_graph()
    assert len(graph) > 30
    assert cycles(graph) == []


def test_import_wakaq_loads_no_heavy_modules() -> None:
    """`import wakaq` is on every producer's start-up path: the opt-in features import what they need when used.
    Failing output before the fix: asyncio, importlib.resources, uuid, random and hashlib were loaded (40 -> 93 ms)."""
    heavy = (
        "asyncio",
        "importlib.resources",
        "uuid",
        "random",
        "hashlib",
        "redis",
        "flask",
        "django",
        "opentelemetry",
        "sentry_sdk",
        "concurrent.futures",
        "wakaq.coalesce",
        "wakaq.tracers",
    )
    code = f"import sys, wakaq; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == "", f"import wakaq loaded {loaded}"
