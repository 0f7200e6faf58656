"""The arrows between ovdet's packages point one way (STYLE.md): read from every module's imports, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent / "ovdet"
GROUND_FLOOR = {"errors", "fileio", "results", "images", "classes", "masks", "prompts"}
# what a package must never import: the model and its text encoders know nothing of training, data or the CLI
FORBIDDEN = {
    "text": {"engine", "data", "cli", "io", "sources"},
    "model": {"engine", "data", "cli", "sources"},
    "runtime": {"engine", "data", "cli", "model"},  # its torch-free text modules (cache, vocabulary) are shared
}
# STYLE.md section 5 names the delegations allowed, as thin lazy imports inside methods, and asks for no more
KNOWN_LAZY = {("results", "io.draw"), ("results", "io.formats"), ("fileio", "__version__")}


def _imports(path: Path) -> set[str]:
    """The ovdet modules ``path`` imports, as dotted names below ``ovdet`` (``"model.detector"``)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
            elif node.module == "ovdet":  # from ovdet import engine
                names = [a.name for a in node.names]
            elif (node.module or "").startswith("ovdet."):
                names = [node.module.removeprefix("ovdet.")]
            else:
                continue
            found.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ovdet.") for a in node.names if a.name.startswith("ovdet."))
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py"))


def test_the_walk_sees_relative_and_lazy_imports():
    assert "errors" in _imports(ROOT / "classes.py") and "prompts" in _imports(ROOT / "classes.py")  # lazy one
    assert "model.head" in _imports(ROOT / "engine" / "distill.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_never_import_the_floors_above_them(package):
    wrong = sorted(f"{p.relative_to(ROOT)} imports ovdet.{m}" for p in (ROOT / package).rglob("*.py")
                   for m in _imports(p) if m.split(".")[0] in FORBIDDEN[package])  # fmt: skip
    assert wrong == []


def test_the_ground_floor_imports_nothing_above_it():
    wrong = sorted(f"{name}.py imports ovdet.{m}" for name in GROUND_FLOOR for m in _imports(ROOT / f"{name}.py")
                   if m.split(".")[0] not in GROUND_FLOOR and (name, m) not in KNOWN_LAZY)  # fmt: skip
    assert wrong == []
