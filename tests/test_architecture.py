"""The rooms of the code and the direction of imports between them (ARCHITECTURE.md), checked.

Every import counts: at module level, inside functions and under TYPE_CHECKING, because a
function-level import that dodges a cycle is still the cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

# room -> the rooms it may import (besides itself). ARCHITECTURE.md draws the same table.
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "nlu": set(),
    "dialogs": {"nlu", "storage"},
    "services": {"dialogs", "nlu", "storage"},
    "delivery": {"dialogs", "storage"},
    "bots": {"delivery", "dialogs", "nlu", "storage"},
    "handoff": {"bots", "services", "dialogs", "nlu", "storage"},
    "emulators": set(),
    "supportbot": {
        "bots",
        "delivery",
        "dialogs",
        "emulators",
        "handoff",
        "nlu",
        "services",
        "storage",
    },
}
ROOMS = set(ALLOWED)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The project modules `path` imports (relative imports resolved). `from p import name`
    counts as importing the submodule `p.name` when there is one, else the package `p` itself
    (its `__init__` is read: re-entering a package that is still importing you is a cycle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {name for name in found if name.split(".")[0] in ROOMS and name != module}


def _graph() -> dict[str, set[str]]:
    paths: dict[str, Path] = {}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            paths[_module_name(path)] = path
    return {name: _imports(path, name, set(paths)) for name, path in paths.items()}


def _against_direction(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if (room := module.split(".")[0]) != (other := target.split(".")[0])
        and other not in ALLOWED[room]
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

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
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_room_imports_only_the_rooms_below_it() -> None:
    wrong = _against_direction(_graph())
    assert not wrong, "imports against the direction in ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_no_module_imports_itself_through_others() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_room_is_a_package_with_a_docstring_saying_what_it_holds() -> None:
    for room in ROOMS:
        init = ROOT / room / "__init__.py"
        assert init.exists(), f"{room}/ has no __init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{room}/__init__.py should say what {room}/ holds"


def test_the_checks_catch_a_wrong_direction_and_a_cycle(tmp_path: Path) -> None:
    """The checks above can fail: made-up imports of each kind are caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("from handoff.desk import Desk\nfrom .sibling import x\n", encoding="utf-8")
    found = _imports(probe, "storage.probe", {"handoff.desk", "storage.sibling"})
    assert found == {"handoff.desk", "storage.sibling"}  # relative imports resolved too
    assert _against_direction({"storage.probe": found}) == ["storage.probe imports handoff.desk"]
    graph = {"dialogs.a": {"dialogs.b"}, "dialogs.b": {"dialogs.c"}, "dialogs.c": {"dialogs.a"}}
    assert _cycles({**graph, "dialogs.d": {"dialogs.a"}}) == [
        ["dialogs.a", "dialogs.b", "dialogs.c"]
    ]
