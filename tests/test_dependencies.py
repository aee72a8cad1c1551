"""Every third-party module the package, the app and train.py import is declared in
pyproject.toml: a fresh `pip install -e .` (scripts/setup.sh) must be enough to run them."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The package, and the app's page modules (imported by name from app/, beside the script).
OWN = {"handwriting", "app", *(p.stem for p in (ROOT / "app").glob("*.py"))}


def imported_modules() -> dict[str, set[str]]:
    """Top-level third-party module -> the files that import it."""
    found: dict[str, set[str]] = {}
    files = [*(ROOT / "handwriting").rglob("*.py"), *(ROOT / "app").rglob("*.py"), ROOT / "train.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_dependency_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalized(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])
                for spec in project["dependencies"]}
    distributions = packages_distributions()
    missing = {}
    for module, files in imported_modules().items():
        provided_by = {normalized(d) for d in distributions.get(module, [module])}
        if not provided_by & declared:
            missing[module] = sorted(files)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
