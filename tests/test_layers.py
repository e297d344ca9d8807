"""The app's layers point one way: an import graph of pam_hybrid's top-level packages and modules, built from the
source, has no cycle; every import points down the layers README.md draws; `domain` imports nothing of the app."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "pam_hybrid"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"apps", "chat", "admin", "management", "templatetags"}),
    frozenset({"runtime", "replay", "usage"}),
    frozenset({"gateway"}),
    frozenset({"providers", "tools", "breakers", "conversations", "observability", "pricing", "routing"}),
    frozenset({"domain", "conf", "models", "process", "redis_client"}),
)
"""Top to bottom; a part may import its own layer's parts (without a cycle) and any layer below."""


def _part(module: str) -> str | None:
    names = module.split(".")
    return names[1] if names[0] == "pam_hybrid" and len(names) > 1 else None


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pam_hybrid":
                yield from (f"pam_hybrid.{alias.name}" for alias in node.names)
            else:
                yield node.module


def import_graph() -> dict[str, dict[str, list[str]]]:
    """part → imported part → the files that import it (migrations left out: Django writes them)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(APP)
        if relative.parts[0] in ("migrations", "__init__.py"):
            continue
        source = relative.parts[0].removesuffix(".py")
        for module in _imports(path):
            target = _part(module)
            if target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, []).append(str(relative))
    return graph


def find_cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of the graph, as the parts along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in graph.get(node, {}):
            if state.get(target) == 1:
                return [*path[path.index(target):], target] if target in path else [node, target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def layer_of(part: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if part in layer:
            return depth
    raise AssertionError(f"pam_hybrid.{part} is in no layer: add it to LAYERS (and to README.md's Layout)")


def test_no_two_parts_depend_on_each_other_directly_or_round_about() -> None:
    graph = import_graph()
    assert find_cycle(graph) is None, f"import cycle: {' → '.join(find_cycle(graph) or [])}"


def test_every_import_points_down_or_across_its_own_layer() -> None:
    upward = [
        f"{source} → {target} ({', '.join(files)})"
        for source, targets in import_graph().items()
        for target, files in targets.items()
        if layer_of(target) < layer_of(source)
    ]
    assert upward == []


def test_every_part_of_the_app_has_a_layer() -> None:
    parts = {p.name.removesuffix(".py") for p in APP.iterdir() if p.name not in ("__init__.py", "__pycache__",
                                                                                  "migrations")}
    assert {part for part in parts if not any(part in layer for layer in LAYERS)} == set()


def test_domain_imports_nothing_of_the_app() -> None:
    assert import_graph().get("domain", {}) == {}


def test_the_consumer_only_translates_in_at_most_150_lines() -> None:
    assert len((APP / "chat" / "consumer.py").read_text().splitlines()) <= 150


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}, ["a", "b", "c", "a"]),
    ({"a": {"b": []}, "b": {"a": []}}, ["a", "b", "a"]),
    ({"a": {"b": [], "c": []}, "b": {"c": []}}, None),
])
def test_the_cycle_finder_finds_round_about_cycles_and_only_those(
    graph: dict[str, dict[str, list[str]]], cycle: list[str] | None
) -> None:
    assert find_cycle(graph) == cycle
