"""What the package imports is declared in pyproject.toml, and what it declares is used (deptry)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.cli import REPO


def deptry(root: Path) -> subprocess.CompletedProcess:
    """deptry on the project in ``root``, configured by its pyproject.toml (a second or two)."""
    return subprocess.run([sys.executable, "-m", "deptry", ".", "--no-ansi"], cwd=root, capture_output=True, text=True, timeout=300)


def test_every_import_is_declared_and_every_declared_package_is_used():
    result = deptry(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_import_missing_from_pyproject_is_found(tmp_path):
    # The same check on a copy of the project whose pyproject.toml forgot Pillow and declares a package
    # nothing imports: both must be named, or the check above could pass on anything.
    shutil.copytree(REPO / "mnist_lit", tmp_path / "mnist_lit", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (REPO / "pyproject.toml").read_text()
    forgot = re.sub(r'\n\s*"pillow[^\n]*', "", pyproject)
    assert forgot != pyproject
    (tmp_path / "pyproject.toml").write_text(forgot.replace('"numpy>=1.26",', '"numpy>=1.26", "six>=1",'))
    result = deptry(tmp_path)
    assert result.returncode != 0
    # DEP003: Pillow is installed, as torchvision's dependency, but not declared.
    assert re.search(r"DEP00[13] 'PIL' imported but (missing|it is a transitive dependency)", result.stdout + result.stderr)
    assert re.search(r"DEP002 'six' defined as a dependency but not used", result.stdout + result.stderr)
