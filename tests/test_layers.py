"""Imports run one way (docs/design.md, "Layers"), own modules are imported at the top of files, and every
lazy package map is mirrored by ``TYPE_CHECKING`` imports that name the same objects."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from ostnet import _layers as L

REPO = Path(__file__).resolve().parents[1]
LAZY_PACKAGES = ["ostnet", "ostnet.data", "ostnet.demo", "ostnet.evaluation", "ostnet.io", "ostnet.training"]


def test_no_import_runs_the_wrong_way():
    wrong = [f"{e.source}:{e.line} imports {e.target}" for e in L.wrong_way_imports()]
    assert wrong == [], "wrong-way imports (see docs/design.md, Layers):\n" + "\n".join(wrong)


def test_every_unit_of_the_package_has_a_layer():
    units = {L.unit_of(L.module_name(p)) for p in L.PACKAGE_ROOT.rglob("*.py")} - {"ostnet"}
    assert units <= set(L.BUILDS_ON), f"units without a layer: {sorted(units - set(L.BUILDS_ON))}"


def test_the_checker_sees_a_wrong_way_edge(tmp_path):
    """The walker finds module-level, function-level, relative and ``TYPE_CHECKING`` imports alike."""
    root = tmp_path / "ostnet"
    (root / "geometry").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "geometry" / "__init__.py").write_text("")
    (root / "geometry" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..models.outputs import Keypoints\n"
        "if TYPE_CHECKING:\n    from ostnet.losses import LossTerms\n"
        "def f():\n    import ostnet.inference.animator\n"
        "from ostnet import config, errors\n"  # geometry builds on errors only
    )
    edges = {(e.target, e.line) for e in L.wrong_way_imports(root)}
    assert {t for t, _ in edges} == {
        "ostnet.models.outputs",
        "ostnet.losses",
        "ostnet.inference.animator",
        "ostnet.config",
    }


def test_the_layers_are_a_hierarchy():
    for unit in L.BUILDS_ON:
        assert unit not in L.allowed_imports(unit), f"{unit} can reach itself: a cycle in BUILDS_ON"
    assert "models" in L.allowed_imports("training") and "training" not in L.allowed_imports("models")
    assert "inference" in L.allowed_imports("commands") and "evaluation" not in L.allowed_imports("inference")


def test_design_md_lists_the_layers_the_test_checks():
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    assert L.render_markdown() in design, (
        "docs/design.md's layer table is stale: paste ostnet._layers.render_markdown()"
    )


def _function_level_own_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    type_checking = {
        id(m)
        for n in tree.body
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for m in ast.walk(n)
    }
    lines = []
    for node in ast.walk(tree):
        if id(node) in top | type_checking:
            continue
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ostnet")):
            lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name.startswith("ostnet") for a in node.names):
            lines.append(node.lineno)
    return lines


# the one import cycle: PECHead subclasses OSTNet, and build_model (models.ostnet) builds a PECHead
CYCLES = {"ostnet.models.ostnet"}


def test_own_modules_are_imported_at_the_top_of_library_files():
    late = []
    for path in sorted(L.PACKAGE_ROOT.rglob("*.py")):
        if L.unit_of(L.module_name(path)) in ("commands", "cli") or L.module_name(path) in CYCLES:
            continue  # the command line dispatches to command modules on demand (docs/design.md)
        late += [f"{L.module_name(path)}:{line}" for line in _function_level_own_imports(path)]
    assert late == []


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_maps_match_their_type_checking_imports(package):
    module = importlib.import_module(package)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    declared = {alias.name: node.module for node in block.body for alias in node.names}
    assert declared == module._LAZY
    assert set(module._LAZY) <= set(module.__all__)
    for name, source in module._LAZY.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name)
