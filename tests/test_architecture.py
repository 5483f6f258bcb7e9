"""The shape of the code: the rules STYLE.md states, checked on the static import graph.

Every module of ``streamkit/`` and ``operators/`` is parsed (never executed, except to look
up base classes), and every ``import`` in it counts: at the top, inside a function, or under
``if TYPE_CHECKING:`` (mypy follows those too, and a cycle there is still two modules that
each need the other to be understood). Relative imports are resolved, and ``from pkg import
module`` is an import of ``pkg.module``.

* the import graph has no cycle;
* no module imports another module's private name (``_name``; dunders such as
  ``__version__`` are public by convention, and ``from __future__`` is no import);
* ``operators`` uses streamkit only through its public modules, ``streamkit`` and
  ``streamkit.errors``, as any user would;
* every exception class is defined in ``streamkit/errors.py``, the one home of the tree.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streamkit", "operators")
PUBLIC_STREAMKIT = frozenset({"streamkit", "streamkit.errors"})
ERRORS_MODULE = "streamkit.errors"


@dataclass(frozen=True)
class Import:
    """One imported module (and the name taken from it) at one line of one module."""

    importer: str
    target: str
    name: str | None
    """The name taken by ``from target import name``; None for a module import."""
    line: int

    def __str__(self) -> str:
        what = self.target if self.name is None else f"{self.name} from {self.target}"
        return f"{self.importer} (line {self.line}) imports {what}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = discover()


def resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names, relative or not."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")
    if MODULES[importer].name != "__init__.py":
        package.pop()  # a plain module's package is its parent; a package is its own
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(importer: str, tree: ast.AST) -> Iterator[Import]:
    """Every import in a module, wherever it stands (ast.walk visits every nested block)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, alias.name, None, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(importer, node)
            if target == "__future__":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    yield Import(importer, submodule, None, node.lineno)
                else:
                    yield Import(importer, target, alias.name, node.lineno)


TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}
IMPORTS = [item for name, tree in TREES.items() for item in imports_of(name, tree)]


def graph() -> dict[str, dict[str, Import]]:
    """Module -> the modules of the packages it imports (with the first import of each)."""
    edges: dict[str, dict[str, Import]] = {name: {} for name in MODULES}
    for item in IMPORTS:
        if item.target in MODULES and item.target != item.importer:
            edges[item.importer].setdefault(item.target, item)
    return edges


def strongly_connected(edges: Mapping[str, Mapping[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def cycle_path(group: list[str], edges: Mapping[str, Mapping[str, Import]]) -> list[Import]:
    """One concrete cycle through a group, as the imports that make it (breadth-first)."""
    start = group[0]
    members = set(group)
    came_from: dict[str, Import] = {}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for successor, item in sorted(edges[node].items()):
            if successor not in members or successor in came_from:
                continue
            came_from[successor] = item
            if successor == start:
                path = [item]
                while path[0].importer != start:
                    path.insert(0, came_from[path[0].importer])
                return path
            todo.append(successor)
    raise AssertionError(f"no cycle through {group}")  # pragma: no cover - Tarjan found one


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# --------------------------------------------------------------------------- the rules


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    cycles = [cycle_path(group, edges) for group in strongly_connected(edges)]
    report = [
        " -> ".join([path[0].importer, *(item.target for item in path)])
        + "\n    "
        + "\n    ".join(str(item) for item in path)
        for path in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(report)


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        str(item)
        for item in IMPORTS
        if item.name is not None and is_private(item.name) and item.target != item.importer
    ]
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_operators_use_streamkit_only_through_its_public_modules() -> None:
    internal = [
        str(item)
        for item in IMPORTS
        if item.importer.split(".")[0] == "operators"
        and item.target.split(".")[0] == "streamkit"
        and item.target not in PUBLIC_STREAMKIT
    ]
    assert not internal, "operators importing streamkit's internals:\n" + "\n".join(internal)


def namespace(module: str) -> Mapping[str, Any]:
    """The module's globals, to resolve base classes; ``__main__`` runs a program: not it."""
    if module.endswith("__main__"):
        return vars(builtins)
    return {**vars(builtins), **vars(importlib.import_module(module))}


def base_object(node: ast.expr, scope: Mapping[str, Any]) -> object:
    """The object a base-class expression (``Name`` or ``a.b.Name``) names, else None."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = base_object(node.value, scope)
        return getattr(owner, node.attr, None)
    if isinstance(node, ast.Subscript):  # Generic[T] and the like
        return base_object(node.value, scope)
    return None


def exception_classes(module: str, tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every class defined in the module (nested ones too) that derives from BaseException."""
    scope = namespace(module)
    local: set[str] = set()  # exception classes found so far in this file, by name
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            found = base_object(base, scope)
            derives = isinstance(found, type) and issubclass(found, BaseException)
            if derives or (isinstance(base, ast.Name) and base.id in local):
                local.add(node.name)
                yield node.name, node.lineno
                break


def test_every_exception_class_is_defined_in_errors() -> None:
    elsewhere = [
        f"{module} (line {line}) defines {name}"
        for module, tree in TREES.items()
        if module != ERRORS_MODULE
        for name, line in exception_classes(module, tree)
    ]
    assert not elsewhere, "exceptions outside streamkit/errors.py:\n" + "\n".join(elsewhere)
    in_errors = {name for name, _ in exception_classes(ERRORS_MODULE, TREES[ERRORS_MODULE])}
    assert {"StreamkitError", "StreamTimeoutError"} <= in_errors  # the checker does find them


# --------------------------------------------------------------------------- the checker


def test_the_checker_sees_imports_everywhere_a_module_can_hold_them() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import errors\n"
        "from ._sse import _private, ServerSentEvent\n"
        "if TYPE_CHECKING:\n"
        "    from streamkit._events import ChatEvent\n"
        "def later() -> None:\n"
        "    import streamkit._client\n"
    )
    found = {
        (item.target, item.name)
        for item in imports_of("streamkit._decode", ast.parse(source))
        if item.target.startswith("streamkit")
    }
    assert found == {
        ("streamkit.errors", None),
        ("streamkit._sse", "_private"),
        ("streamkit._sse", "ServerSentEvent"),
        ("streamkit._events", "ChatEvent"),
        ("streamkit._client", None),
    }


def test_the_checker_finds_a_cycle_and_names_its_modules() -> None:
    def edge(importer: str, target: str) -> Import:
        return Import(importer, target, None, 1)

    edges = {
        "a": {"b": edge("a", "b")},
        "b": {"c": edge("b", "c")},
        "c": {"a": edge("c", "a")},
        "d": {"a": edge("d", "a")},
    }
    [group] = strongly_connected(edges)
    assert group == ["a", "b", "c"]
    assert [item.target for item in cycle_path(group, edges)] == ["b", "c", "a"]


def test_the_checker_resolves_relative_imports() -> None:
    assert resolve("operators._timing", ast.ImportFrom("_pending", [], 1)) == "operators._pending"
    assert resolve("operators", ast.ImportFrom("_text", [], 1)) == "operators._text"
