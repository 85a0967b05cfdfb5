"""The wheel carries what a user outside the clone needs: it is built, installed into a fresh virtual
environment and trains with a shipped recipe named from another folder."""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from helpers.cli import REPO

pytestmark = pytest.mark.slow
# What the build reads; copied, so that building leaves nothing in the repository.
SOURCES = ("mnist_lit", "configs", "pyproject.toml", "README.md", "LICENSE")
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2"]


def run(*command: str, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, **options)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The Python of a new virtual environment with the wheel installed (its dependencies seen from this one)."""
    scratch = tmp_path_factory.mktemp("wheel")
    (scratch / "source").mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, scratch / "source" / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, scratch / "source" / name)
    # Without build isolation: the build backend installed here (.[dev]), nothing downloaded.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(scratch / "dist"),
        str(scratch / "source"))
    (wheel,) = (scratch / "dist").glob("mnist_lit-*.whl")
    venv.create(scratch / "env", system_site_packages=True, with_pip=False)
    python = scratch / "env" / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    return python


def test_the_wheel_holds_the_package_its_page_and_its_recipes(installed):
    # From a folder of its own: a clone as the working folder would come first on the path.
    where = run(str(installed), "-c", "import mnist_lit, pathlib; print(pathlib.Path(mnist_lit.__file__).parent)",
                cwd=installed.parent).stdout.strip()
    package = Path(where)
    assert package.is_relative_to(installed.parents[1])  # the wheel's copy, not the clone
    assert (package / "commands" / "page" / "index.html").is_file()
    shipped = {path.relative_to(package / "configs").as_posix() for path in (package / "configs").rglob("*.yaml")}
    assert shipped == {path.relative_to(REPO / "configs").as_posix() for path in (REPO / "configs").rglob("*.yaml")}


def test_fit_with_a_shipped_recipe_by_name_from_another_folder(installed, tmp_path, real_mnist):
    env = {"MNIST_LIT_DATA_DIR": str(real_mnist.resolve()), "PATH": str(installed.parent)}
    for name, folder in (("speedrun", "by_name"), ("configs/speedrun.yaml", "as_the_readme_writes_it")):
        (tmp_path / folder).mkdir()
        run(str(installed), "-m", "mnist_lit", "fit", "--config", name, *SHORT, cwd=tmp_path / folder, env=env)
        config = yaml.safe_load((tmp_path / folder / "logs" / "version_0" / "config.yaml").read_text())
        recipe = yaml.safe_load((REPO / "configs" / "speedrun.yaml").read_text())["model"]
        assert config["model"]["lr"] == recipe["lr"] and config["model"]["net"] == recipe["net"] != "keras_cnn"
        assert (tmp_path / folder / "checkpoints" / "version_0" / "last.ckpt").is_file()
