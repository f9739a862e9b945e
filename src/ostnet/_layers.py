"""The layers of the ostnet package and which of them each may import (docs/design.md, "Layers").

Imports run one way: a unit (a top-level module or subpackage of ``ostnet``) may import only the units it
builds on, directly or through them. ``tests/test_layers.py`` walks every import statement of the package
(module level, in functions and under ``TYPE_CHECKING`` alike) with ``ast`` and fails on an edge that runs the
other way; ``scripts/`` tools count them with ``wrong_way_imports``. Nothing here is imported by the library.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

PACKAGE_ROOT = Path(__file__).resolve().parent

# unit -> the units it builds on directly (order: lowest layer first). The closure is what it may import.
BUILDS_ON: dict[str, tuple[str, ...]] = {
    "errors": (),
    "_lazy": (),
    "_layers": (),
    "options": ("errors",),
    "config": ("options",),
    "geometry": ("errors",),
    "io": ("errors", "_lazy"),
    "face": ("io", "geometry", "options"),
    "weights": ("io",),
    "augment": ("config", "errors"),
    "models": ("config", "geometry", "face"),
    "checkpoint": ("models", "io"),
    "convert_fomm": ("checkpoint",),
    "data": ("config", "io", "face", "augment", "_lazy"),
    "losses": ("models", "weights"),
    "training": ("losses", "convert_fomm", "data", "_lazy"),
    "inference": ("checkpoint", "face", "io"),
    "evaluation": ("inference", "data", "weights", "_lazy"),
    "demo": ("evaluation", "training"),
    "commands": ("demo", "convert_fomm"),
    "cli": ("commands",),
}

# ``ostnet/__init__.py`` is the public facade (lazy names of the layers below); inside the package only the
# command line reads it (``__version__``).
FACADE_USERS = ("cli", "commands")


def allowed_imports(unit: str) -> frozenset[str]:
    """Every unit ``unit`` may import: the closure of ``BUILDS_ON``."""
    seen: set[str] = set()
    stack = list(BUILDS_ON[unit])
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(BUILDS_ON[name])
    return frozenset(seen)


class ImportEdge(NamedTuple):
    source: str  # importing module, e.g. "ostnet.geometry.keypoints"
    target: str  # imported module or package, e.g. "ostnet.models.outputs"
    line: int


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(root: Path = PACKAGE_ROOT) -> Iterator[ImportEdge]:
    """Every import of an ``ostnet`` module by an ``ostnet`` module under ``root``."""
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from ostnet import config`` / ``from ostnet.evaluation import metrics`` name submodules
                targets = [f"{base}.{alias.name}" if base == "ostnet" else base for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "ostnet" or target.startswith("ostnet."):
                    yield ImportEdge(module, target, node.lineno)


# The front ends are one layer: the web app reuses commands (and ``ostnet web`` starts the web app).
SAME_LAYER = {"web": "commands"}


def unit_of(module: str) -> str:
    """``ostnet.models.outputs`` -> ``models``; the facade ``ostnet`` (or a name in it) -> ``ostnet``; ``web``
    counts as ``commands`` (``SAME_LAYER``)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in SAME_LAYER:
        return SAME_LAYER[parts[1]]
    if len(parts) < 2 or parts[1] not in BUILDS_ON:
        return "ostnet"
    return parts[1]


def wrong_way_imports(root: Path = PACKAGE_ROOT) -> list[ImportEdge]:
    """The imports that run against ``BUILDS_ON`` (or name a unit missing from it)."""
    wrong = []
    for edge in import_edges(root):
        source, target = unit_of(edge.source), unit_of(edge.target)
        if source == target or (source == "ostnet" and target != "ostnet"):
            continue  # inside one unit; the facade may name any unit
        if target == "ostnet":
            if source not in FACADE_USERS:
                wrong.append(edge)
        elif source not in BUILDS_ON or target not in allowed_imports(source):
            wrong.append(edge)
    return wrong


def render_markdown() -> str:
    """The layer list of docs/design.md (kept equal to it by tests/test_layers.py)."""
    lines = ["| unit (`ostnet.<unit>`) | builds on (it may import these and all they may import) |", "|---|---|"]
    for unit, direct in BUILDS_ON.items():
        lines.append(f"| `{unit}` | {', '.join(f'`{d}`' for d in direct) or 'nothing of ostnet'} |")
    return "\n".join(lines)
