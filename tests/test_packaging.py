"""The package as it ships: every folder of Python modules is a package that pyproject.toml lists (else pip
would install without it, and the import contracts, checked on the installed tree, would not see it), and
every package says in its docstring what its job is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
REPO = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """Every folder holding Python modules under the mapped roots, by the package name it must have."""
    found = {}
    for root_package, folder in CONFIG["package-dir"].items():
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.parent.relative_to(REPO / folder)
            if "__pycache__" not in relative.parts:
                found[".".join([root_package, *relative.parts])] = path.parent
    return found


def test_every_folder_of_modules_is_a_listed_package():
    folders = _package_folders()
    assert sorted(folders) == sorted(CONFIG["packages"])
    assert [name for name, folder in folders.items() if not (folder / "__init__.py").exists()] == []


def test_every_package_says_what_it_is_for():
    undocumented = [name for name, folder in _package_folders().items()
                    if not ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))]
    assert undocumented == []
