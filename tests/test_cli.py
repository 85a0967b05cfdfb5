import contextlib
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

import mnist_lit
import mnist_lit.__main__ as entry
from mnist_lit import cli, errors, hardware
from mnist_lit.__main__ import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def print_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit:
        main(["fit", *args, "--print_config"])
    assert exit.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_default_yaml_equals_the_code_defaults(capsys):
    assert print_config(capsys) == yaml.safe_load((CONFIGS / "default.yaml").read_text())


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(capsys, config):
    assert print_config(capsys, "--config", str(config))["trainer"]["max_epochs"] >= 1


def test_options_are_reachable_from_the_command_line(capsys):
    config = print_config(
        capsys, "--model.lr", "0.01", "--data.batch_size", "64", "--trainer.max_epochs", "2",
        "--trainer.accelerator", "cpu", "--early_stopping.patience", "7", "--seed_everything", "3",
        "--model.net", "batchnorm_cnn", "--data.dataset", "kmnist", "--data.augment_degrees", "12",
    )
    assert config["model"]["net"] == "batchnorm_cnn" and config["data"]["dataset"] == "kmnist"
    assert config["data"]["augment_degrees"] == 12
    assert config["model"]["lr"] == 0.01
    assert config["data"]["batch_size"] == 64
    assert config["trainer"]["max_epochs"] == 2
    assert config["trainer"]["accelerator"] == "cpu"
    assert config["early_stopping"]["patience"] == 7
    assert config["seed_everything"] == 3


def test_an_unknown_option_is_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["fit", "--model.learning_rate", "0.1"])
    assert exit.value.code != 0
    assert "learning_rate" in capsys.readouterr().err


def run_main(capsys, monkeypatch, tmp_path, *args: str) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(list(args))
    return exit.value.code, capsys.readouterr().err


def test_test_without_any_checkpoint_is_one_clear_line(capsys, monkeypatch, tmp_path):
    code, err = run_main(capsys, monkeypatch, tmp_path, "test")
    assert code == 1
    assert err.startswith("error: No checkpoint found under") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_impossible_value_is_one_clear_line_and_writes_nothing(capsys, monkeypatch, tmp_path):
    code, err = run_main(capsys, monkeypatch, tmp_path, "fit", "--model.lr", "-0.1")
    assert code == 1
    assert err.startswith("error: Need lr > 0") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_data_is_one_clear_line(capsys, monkeypatch, tmp_path):
    code, err = run_main(capsys, monkeypatch, tmp_path, "fit", "--data.data_dir", str(tmp_path / "empty"), "--data.download", "false")
    assert code == 1
    assert "MNIST files not found" in err and "MNIST_LIT_DATA_DIR" in err and err.count("\n") == 1


@pytest.mark.parametrize("command, tuned", [("fit", True), ("test", True), ("predict", False), ("export", False)])
def test_only_training_and_evaluation_tune_the_allocator(monkeypatch, command, tuned):
    # Both `python -m mnist_lit` and the installed `mnist-lit` script go through run().
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "mnist-lit"]
    assert script.value == "mnist_lit.__main__:run"
    calls = []
    monkeypatch.setattr(hardware, "reuse_freed_memory", lambda: calls.append("tuned"))
    monkeypatch.setattr(cli, "main", lambda argv: calls.append("ran"))
    monkeypatch.setattr(errors, "run_command", lambda command, argv: calls.append("ran") or 0)
    monkeypatch.setattr(sys, "argv", ["mnist-lit", command, "--help"])
    with contextlib.suppress(SystemExit):
        entry.run()
    assert calls == (["tuned", "ran"] if tuned else ["ran"])


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "export", "serve"])
def test_thin_commands_start_without_lightning(command):
    # Lightning and torchmetrics take seconds to import; predict, export and serve do not need them, nor timm
    # unless a checkpoint's network is timm's.
    script = (
        "import runpy, sys, contextlib\n"
        f"sys.argv = ['mnist-lit', '{command}', '--help']\n"
        "with contextlib.suppress(SystemExit):\n"
        "    runpy.run_module('mnist_lit', run_name='__main__')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'torchmetrics', 'pytorch_lightning', 'timm'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m mnist_lit " + command in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_serve_without_its_extra_says_how_to_install_it():
    script = (
        "import runpy, sys\n"
        "sys.modules['litserve'] = None  # as if not installed\n"
        "sys.argv = ['mnist-lit', 'serve']\n"
        "runpy.run_module('mnist_lit', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: serve needs litserve, which is not installed: pip install -e '.[serve]' in the repository "
        "(pip install 'mnist-lit[serve]' elsewhere)."
    )


def test_a_config_written_by_0_2_0_still_parses_with_its_class_names(capsys):
    # Its model and data module were DigitClassifier and MNISTDataModule, now aliases of the new names.
    config = print_config(capsys, "--config", str(Path(__file__).parent / "fixtures" / "v0.2.0_config.yaml"))
    assert config["data"]["dataset"] == "fashion_mnist" and config["model"]["conv1_channels"] == 8
    from mnist_lit.data.datamodule import ImageDataModule, MNISTDataModule
    from mnist_lit.models.classifier import DigitClassifier, ImageClassifier
    from mnist_lit.models.networks import DigitCNN, KerasCNN

    assert (MNISTDataModule, DigitClassifier, DigitCNN) == (ImageDataModule, ImageClassifier, KerasCNN)


def test_the_command_list_names_every_command():
    assert {name for name, (_, module) in entry.COMMANDS.items() if module is entry.LIGHTNING} == set(cli.LIGHTNING_SUBCOMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("args, status", [(["--help"], 0), ([], 2), (["fitt"], 2), (["--version"], 0)])
def test_the_front_door_lists_the_commands_without_importing_lightning(args, status):
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['mnist-lit', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('mnist_lit', run_name='__main__')\n"
        "finally:\n"
        "    print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'torch', 'pytorch_lightning'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == status, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"  # neither torch nor Lightning imported
    shown = result.stdout + result.stderr
    if args == ["--version"]:
        assert shown.startswith("mnist-lit ") and mnist_lit.__version__ in shown
        return
    for command in entry.COMMANDS:
        assert f"\n  {command} " in shown, command
    if args == ["fitt"]:
        assert result.stderr.splitlines()[0] == "error: unknown command 'fitt'; did you mean fit?"
