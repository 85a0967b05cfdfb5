"""The package's layers (pyproject.toml's import-linter contracts): each imports only those below it, and
no two modules or folders import each other. Old module paths still name today's modules."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import REPO


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # A process of its own, run where the package to check lies, so that it is the one imported and analysed.
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"],
                          cwd=root, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": ""})


def test_the_package_keeps_its_layers_and_has_no_import_cycle():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize("module, added, broken", [
    ("mnist_lit/data/sets.py", "from mnist_lit.models import networks", "Each layer imports only the layers below it BROKEN"),
    ("mnist_lit/data/splits.py", "from mnist_lit.data import sets", "No import cycle among the modules of any folder BROKEN"),
])
def test_an_upward_import_or_a_cycle_breaks_a_contract(tmp_path, module, added, broken):
    shutil.copytree(REPO / "mnist_lit", tmp_path / "mnist_lit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    changed = tmp_path / module
    changed.write_text(changed.read_text() + f"\n{added}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and broken in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


def test_old_module_and_class_paths_name_todays_modules():
    import mnist_lit.checkpoint_files as checkpoint_files
    import mnist_lit.model as model
    import mnist_lit.sources as sources

    import mnist_lit.data as data
    from mnist_lit.checkpoints import AtomicCheckpointIO
    from mnist_lit.checkpoints.reading import read_checkpoint
    from mnist_lit.checkpoints.writing import AtomicCheckpointIO as atomic_checkpoint_io
    from mnist_lit.data.datamodule import ImageDataModule
    from mnist_lit.data.layouts import list_set
    from mnist_lit.models import classifier

    assert model is classifier and model.__spec__.name == "mnist_lit.models.classifier"  # one module, its own name
    assert model.ImageClassifier is classifier.ImageClassifier and data.ImageDataModule is ImageDataModule
    assert AtomicCheckpointIO is atomic_checkpoint_io and checkpoint_files.read_checkpoint is read_checkpoint
    assert sources.list_set is list_set  # a module split in parts: the names of all of them
    with pytest.raises(ModuleNotFoundError):
        import mnist_lit.no_such_module  # noqa: F401
