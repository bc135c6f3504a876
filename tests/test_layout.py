"""The layout rules of README's "Layout": every folder says what its room is for, no source file runs past
450 lines, no module imports another package's private names, and the CLI reaches the code through the
applications and the public API."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latentvar"
MODULES = sorted(SRC.rglob("*.py"))
MAX_LINES = 450


def _imports(path: Path):
    """(module, name) for every `from latentvar... import name` in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latentvar"):
            for alias in node.names:
                yield node.module, alias.name


def _package(path: Path) -> str:
    """The first folder under latentvar/ (or the module itself for a top-level file)."""
    return path.relative_to(SRC).parts[0].removesuffix(".py")


@pytest.mark.parametrize("init", sorted(SRC.rglob("__init__.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_every_folder_says_what_its_room_is_for(init):
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 8, f"{init.relative_to(SRC)}: expected a docstring naming the room"


def test_no_source_file_runs_past_the_limit():
    long = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_no_private_imports_across_packages():
    crossing = []
    for path in MODULES:
        for module, name in _imports(path):
            owner = module.split(".")[1] if "." in module else ""
            if name.startswith("_") and owner != _package(path):
                crossing.append(f"{path.relative_to(SRC)}: from {module} import {name}")
    assert not crossing, crossing


def test_the_cli_imports_applications_and_the_public_api_only():
    private = []
    for path in sorted((SRC / "cli").glob("*.py")):
        for module, name in _imports(path):
            parts = module.split(".")
            inside_cli = parts[:2] == ["latentvar", "cli"]
            if name.startswith("_") or (not inside_cli and any(p.startswith("_") for p in parts[1:])):
                private.append(f"cli/{path.name}: from {module} import {name}")
    assert not private, private


def test_demos_is_gone():
    assert not list((SRC / "demos").glob("*.py"))  # a stale __pycache__ may stay behind
