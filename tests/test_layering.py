"""The house: dependencies flow one way, from the API inward; the picture in docs/architecture.md is true."""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each room may import rooms of a lower level only (and itself). Inner rooms know nothing of outer ones.
LEVELS = {
    "errors": 0, "_redact": 0, "_stack": 0, "_tensorflow": 0, "_numbers": 0, "_deferred": 0,
    "models": 1, "data": 1, "stores": 1, "scoring": 1,
    "space": 2, "splits": 2, "preprocess": 2,
    "studies": 3,
    "runner": 4,
    "review": 5,
    "workflow": 6,
    "tracking": 6,
    "reproduction": 7,
    "api": 8, "demo_data": 8, "ui": 8,
    "cli": 9, "search": 9, "__main__": 10,
}


def _room(module: str) -> str:
    parts = module.removesuffix(".__init__").split(".")
    return parts[1] if len(parts) > 1 else "search"


def import_graph() -> dict[str, set[tuple[str, str]]]:
    """room -> {(imported room, file)}, every import in the package, at module level or in a function."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    package = ROOT / "search"
    for path in package.rglob("*.py"):
        module = "search." + ".".join(path.relative_to(package).with_suffix("").parts)
        src = _room(module.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "search":
                targets = ["search." + a.name for a in node.names] if node.module == "search" else [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "search"]
            for target in targets:
                dst = _room(target)
                if dst != src and dst != "__version__":
                    edges[src].add((dst, str(path.relative_to(ROOT))))
    return edges


def test_every_room_has_a_level():
    rooms = {_room("search." + ".".join(p.relative_to(ROOT / "search").with_suffix("").parts))
             for p in (ROOT / "search").rglob("*.py")}
    assert rooms <= set(LEVELS), f"rooms without a level: {sorted(rooms - set(LEVELS))}"


def test_dependencies_flow_inward_only():
    wrong = [f"{src} -> {dst} ({where})" for src, targets in import_graph().items() for dst, where in targets
             if LEVELS[dst] >= LEVELS[src]]
    assert not wrong, "imports that run back up (or sideways):\n" + "\n".join(sorted(wrong))


def test_the_architecture_picture_shows_every_dependency():
    text = (ROOT / "docs" / "architecture.md").read_text()
    drawn = set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", text, flags=re.M))
    actual = {(src, dst) for src, targets in import_graph().items() for dst, _ in targets
              if src not in ("search", "__main__", "demo_data")
              and dst not in ("errors", "_redact", "_stack", "_tensorflow", "_numbers", "_deferred")}
    assert actual <= drawn, f"docs/architecture.md lacks: {sorted(actual - drawn)}"
    assert drawn <= actual, f"docs/architecture.md draws imports that do not exist: {sorted(drawn - actual)}"
