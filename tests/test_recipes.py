"""The shipped recipes by name: `--config speedrun` from any folder, a file that exists always winning."""

import pytest
import yaml
from helpers.cli import REPO

from mnist_lit import recipes, tune
from mnist_lit.__main__ import main

CONFIGS = REPO / "configs"


def printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit:
        main(["fit", *args, "--print_config"])
    assert exit.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["speedrun", "speedrun.yaml", "configs/speedrun.yaml"])
def test_a_shipped_recipe_is_found_by_name_from_any_folder(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    config = printed_config(capsys, "--config", name)
    assert config["model"]["lr"] == yaml.safe_load((CONFIGS / "speedrun.yaml").read_text())["model"]["lr"]
    assert config["model"]["lr_schedule"] == "one_cycle"


def test_a_file_of_that_name_where_the_command_runs_is_the_one_read(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "speedrun").write_text("model:\n  lr: 0.0123\n")
    assert printed_config(capsys, "--config", "speedrun")["model"]["lr"] == 0.0123
    assert printed_config(capsys, "--config=speedrun.yaml")["model"]["lr_schedule"] == "one_cycle"


def test_every_shipped_recipe_is_found_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in CONFIGS.glob("*.yaml"):
        assert recipes.shipped(path.stem) == path and recipes.shipped(path.name) == path
    assert recipes.shipped("nope") is None and recipes.shipped("search") is None
    assert recipes.shipped("other/speedrun.yaml") is None  # a path with folders names a file, not a recipe
    assert recipes.config_options_resolved(["fit", "-c", "nope", "--model.lr", "speedrun"]) == ["fit", "-c", "nope", "--model.lr", "speedrun"]


def test_tune_finds_a_shipped_search_space_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = tune.parse(["--search", "fashion_mnist"]).space
    assert by_name == tune.parse(["--search", str(CONFIGS / "search" / "fashion_mnist.yaml")]).space
