"""`python -m mnist_lit tune`: search spaces, one-line refusals, and studies shared, killed and continued.

The searches run on tiny synthetic MNIST files with a few training steps per trial: what is tested is
the study's bookkeeping (how many trials, which state, what is written), not what they learn.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers.cli import REPO, run_cli
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from mnist_lit import tune
from mnist_lit.core.errors import UserError, run_command

TINY_TRIAL = ["--data.val_size", "20", "--data.batch_size", "16", "--trainer.limit_train_batches", "3",
              "--trainer.max_epochs", "2", "--data.outliers", "none"]
SPACE = "model.lr: {low: 1.0e-3, high: 1.0e-2, log: true}\nmodel.dropout: [0.0, 0.25]\n"


def test_the_default_space_is_the_one_in_configs():
    assert yaml.safe_load((REPO / "configs" / "search" / "default.yaml").read_text()) == tune.DEFAULT_SPACE


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "search").glob("*.yaml")), ids=lambda path: path.name)
def test_every_search_space_in_configs_is_one_fit_takes(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tune.check_fit_options(tune.parse(["--search", str(path)]))  # every bound and choice parsed as `fit` would


def test_search_space_entries_become_optuna_distributions(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("model.lr: {low: 1e-4, high: 1.0e-2, log: true}\ndata.batch_size: {low: 32, high: 256, step: 32}\n"
                    "model.dropout: {low: 0, high: 0.5}\nmodel.net: [keras_cnn, batchnorm_cnn]\n")
    space = tune.read_space(path)
    assert space["model.lr"] == FloatDistribution(1e-4, 1e-2, log=True)  # YAML's string "1e-4" read as the number
    assert space["data.batch_size"] == IntDistribution(32, 256, step=32)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)  # a float range, as one bound is
    assert space["model.net"] == CategoricalDistribution(["keras_cnn", "batchnorm_cnn"])


@pytest.mark.parametrize("spec, message", [
    ("{low: 0.1, high: 0.01}", r"model.lr: .*low.*high"),
    ("{low: 0, high: 0.1, log: true}", r"model.lr: .*log"),
    ("{low: 0.001}", r"model.lr: a range needs both low and high"),
    ("{low: 0.001, high: 0.1, scale: log}", r"model.lr has unknown keys \['scale'\]"),
    ("{choices: []}", r"model.lr: choices must be a non-empty list"),
    ("0.01", r"model.lr must be \{low: ..., high: ...\} or \{choices: \[...\]\}"),
])
def test_a_bad_distribution_is_refused_naming_the_file_and_option(tmp_path, spec, message):
    path = tmp_path / "space.yaml"
    path.write_text(f"model.lr: {spec}\n")
    with pytest.raises(UserError, match=rf"space.yaml: {message}"):
        tune.read_space(path)


def tune_in_process(args: list[str], capsys) -> tuple[int, str]:
    """tune's exit status and stderr, run as the command line runs it."""
    try:
        status = run_command(tune.main, args)
    except SystemExit as exit_:  # a fit option refused by LightningCLI's parser
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", ["unknown option in the space", "bad value in the space", "unknown fixed option",
                                  "bad distribution", "unreachable storage", "not a storage URL", "storage in memory"])
def test_bad_input_gets_one_line_and_leaves_nothing(case, tmp_path, tiny_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", str(tiny_mnist))
    space, extra, message = {
        "unknown option in the space": ("model.lr_typo: [0.1]", [], r"model.lr_typo = 0.1 is not a `fit` option value.*unrecognized"),
        "bad value in the space": ("model.net: [keras_cnn, resnet]", [], r"model.net = 'resnet' is not a `fit` option value"),
        "unknown fixed option": (SPACE, ["--model.lr_typo", "1"], r"unrecognized arguments: --model.lr_typo 1 \(`python -m mnist_lit fit --help`"),
        "bad distribution": ("model.lr: {low: 1, high: 0.5}", [], r"space.yaml: model.lr: "),
        "unreachable storage": (SPACE, ["--storage", f"sqlite:///{tmp_path}/no/such/folder/study.db"],
                                r"Cannot open the study's storage sqlite:///.*study.db: .*unable to open database file.*--storage"),
        "not a storage URL": (SPACE, ["--storage", "study.db"], r"--storage 'study.db' is not a database URL"),
        "storage in memory": (SPACE, ["--storage", "sqlite:///:memory:"], r"would keep the study in memory, lost at the end"),
    }[case]
    (tmp_path / "space.yaml").write_text(space + "\n")
    before = set(tmp_path.iterdir())
    status, stderr = tune_in_process(["--search", "space.yaml", *extra, *TINY_TRIAL], capsys)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert status != 0 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert __import__("re").search(message, errors[0]), errors[0]
    assert set(tmp_path.iterdir()) == before


def start_tune(cwd: Path, data_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MNIST_LIT_DATA_DIR": str(data_dir)}
    return subprocess.Popen([sys.executable, "-m", "mnist_lit", "tune", "--search", "space.yaml", *args, *TINY_TRIAL],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


def states(cwd: Path, study: str = "search") -> dict[TrialState, int]:
    trials = optuna.load_study(study_name=study, storage=f"sqlite:///{cwd}/studies/{study}/study.db").get_trials()
    return {state: sum(t.state == state for t in trials) for state in TrialState}


@pytest.mark.slow
def test_a_search_writes_runs_best_options_and_pictures_that_fit_runs(tmp_path, tiny_mnist):
    (tmp_path / "space.yaml").write_text(SPACE)
    output = run_cli(tmp_path, tiny_mnist, "tune", "--search", "space.yaml", "--trials", "3", *TINY_TRIAL).stdout
    counts = states(tmp_path)
    assert counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] == 3 and counts[TrialState.FAIL] == 0, output
    study = tmp_path / "studies" / "search"
    assert sorted(p.name for p in (study / "logs").iterdir()) == ["trial_0000", "trial_0001", "trial_0002"]
    # Each trial's run shows its sampled options by their option names in TensorBoard's HPARAMS tab.
    hparams = yaml.safe_load((study / "logs" / "trial_0001" / "hparams.yaml").read_text())
    assert {"model.lr", "model.dropout"} <= set(hparams)
    best_trial = optuna.load_study(study_name="search", storage=f"sqlite:///{study}/study.db").best_trial
    best = yaml.safe_load((study / "best.yaml").read_text())
    assert best["model"]["lr"] == best_trial.params["model.lr"] and best["model"]["dropout"] == best_trial.params["model.dropout"]
    assert best["data"]["val_size"] == 20  # the fixed options too
    assert (study / "history.png").stat().st_size > 0 and (study / "importances.png").stat().st_size > 0
    assert f"trial {best_trial.number}" in output and "fit --config studies/search/best.yaml" in output
    run_cli(tmp_path, tiny_mnist, "fit", "--config", "studies/search/best.yaml")
    assert (tmp_path / "checkpoints" / "version_0" / "last.ckpt").is_file()


@pytest.mark.slow
def test_two_searches_on_one_study_finish_exactly_the_trials_asked(tmp_path, tiny_mnist):
    (tmp_path / "space.yaml").write_text(SPACE)
    # One of them with two worker processes of its own: three workers on one SQLite file.
    searches = [start_tune(tmp_path, tiny_mnist, "--trials", "5", *jobs) for jobs in ([], ["--jobs", "2"])]
    outputs = [finish(search) for search in searches]
    counts = states(tmp_path)
    assert counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] == 5, outputs
    assert counts[TrialState.RUNNING] == 0, outputs


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "SIGTERM"])
def test_a_search_stopped_mid_trial_continues_and_the_stopped_trial_does_not_count(tmp_path, tiny_mnist, stop):
    (tmp_path / "space.yaml").write_text(SPACE)
    slow = ["--trainer.max_epochs", "6"]  # several seconds a trial, so that it is stopped mid-way
    search = start_tune(tmp_path, tiny_mnist, "--trials", "2", *slow)
    # The second trial's first epoch is written: it is training.
    training = tmp_path / "studies" / "search" / "checkpoints" / "trial_0001" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not training.exists() and search.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert search.poll() is None, search.communicate()[0][-3000:]
    search.send_signal(stop)
    output, _ = search.communicate(timeout=120)
    if stop == signal.SIGTERM:  # stopped between two steps: the trial marked failed, the study summed up
        assert search.returncode == 143 and "Stopped; the same command continues the study." in output, output[-3000:]
        assert "Traceback" not in output and states(tmp_path)[TrialState.FAIL] == 1
    else:
        assert states(tmp_path)[TrialState.RUNNING] == 1  # what kill -9 leaves behind

    # The same command again, in this process: the study continues where the stopped one left it.
    output = run_cli(tmp_path, tiny_mnist, "tune", "--search", "space.yaml", "--trials", "2", *slow, *TINY_TRIAL).stdout
    counts = states(tmp_path)
    assert counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] == 2, output
    assert counts[TrialState.FAIL] == 1 and counts[TrialState.RUNNING] == 0, output


@pytest.mark.slow
def test_a_study_refuses_another_search_space(tmp_path, tiny_mnist, monkeypatch, capsys):
    (tmp_path / "space.yaml").write_text(SPACE)
    run_cli(tmp_path, tiny_mnist, "tune", "--search", "space.yaml", "--trials", "1", *TINY_TRIAL)
    (tmp_path / "space.yaml").write_text("model.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", str(tiny_mnist))
    status, stderr = tune_in_process(["--search", "space.yaml", "--trials", "2", *TINY_TRIAL], capsys)
    assert status == 1 and stderr.count("\n") == 1, stderr
    assert "The study 'search' in sqlite:///studies/search/study.db searches ['model.dropout', 'model.lr']" in stderr
    assert "pass another --study, or the --search it was started with" in stderr
    assert states(tmp_path)[TrialState.COMPLETE] + states(tmp_path)[TrialState.PRUNED] == 1


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_the_pruner_stops_a_trial_after_its_first_epoch(tmp_path, tiny_mnist, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", str(tiny_mnist))
    (tmp_path / "space.yaml").write_text(SPACE)
    search = tune.parse(["--search", "space.yaml", *TINY_TRIAL, "--trainer.max_epochs", "4"])
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    study.optimize(lambda trial: tune.run_trial(search, trial), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    assert 0 <= trial.intermediate_values[0] <= 1  # the validation accuracy of epoch 1


@pytest.mark.parametrize("race", ["IntegrityError", "OperationalError"])
def test_a_search_that_finds_the_tables_another_just_made_opens_them(monkeypatch, race):
    # Two searches starting together on a new SQLite file both create the tables; the slower one fails
    # on a row (IntegrityError) or on a table (OperationalError), depending on where they crossed.
    from sqlalchemy.exc import IntegrityError, OperationalError

    error = {"IntegrityError": IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: alembic_version")),
             "OperationalError": OperationalError("CREATE TABLE", {}, Exception("table trial_params already exists"))}[race]
    attempts = []

    def storage(*args, **kwargs):
        attempts.append(args)
        if len(attempts) == 1:
            raise error
        return "opened"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    assert tune.rdb_storage("sqlite:///study.db", {}) == "opened" and len(attempts) == 2


def test_a_search_waits_while_other_searches_are_still_creating_the_tables(monkeypatch):
    # Four processes on one new file: each immediate retry met the next table another was creating.
    from sqlalchemy.exc import OperationalError

    attempts, waits = [], []

    def storage(*args, **kwargs):
        attempts.append(args)
        if len(attempts) <= 4:
            raise OperationalError("CREATE TABLE", {}, Exception(f"table table_{len(attempts)} already exists"))
        return "opened"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(tune.time, "sleep", waits.append)
    assert tune.rdb_storage("sqlite:///study.db", {}) == "opened" and len(attempts) == 5
    assert waits == sorted(waits) and len(waits) == 4 and waits[0] > 0  # longer each time


def test_a_storage_that_cannot_be_opened_is_not_retried(monkeypatch):
    from sqlalchemy.exc import OperationalError

    attempts = []

    def storage(*args, **kwargs):
        attempts.append(args)
        raise OperationalError("connect", {}, Exception("unable to open database file"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    with pytest.raises(OperationalError):
        tune.rdb_storage("sqlite:///no/such/study.db", {})
    assert len(attempts) == 1
