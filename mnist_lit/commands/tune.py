"""`python -m mnist_lit tune`: a search for better options on Optuna, each trial a real `fit`.

    python -m mnist_lit tune --trials 30 --data.dataset fashion_mnist
    python -m mnist_lit tune --search configs/search/default.yaml --storage postgresql://host/db --jobs 2

Every option that is not tune's own is `fit`'s, the same for every trial; the search space
(--search, YAML: option -> range or choices) adds the options each trial samples. A trial reports
its validation accuracy after every epoch, so that the pruner can stop the unpromising ones early;
its value is the best validation accuracy it reached. The test pictures are never read.

The study lives in a database: SQLite in the study's folder unless --storage names another
(any SQLAlchemy URL, shared by the machines of one search). The same command started again, after
Ctrl-C, a crash or kill -9, continues the study until it holds --trials finished trials; a trial
that was cut short is marked failed and does not count.
"""

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
import torch
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from mnist_lit import recipes
from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import reuse_freed_memory, usable_cores

# The space searched without --search; configs/search/default.yaml is a copy (tests/test_tune.py).
DEFAULT_SPACE = {
    "model.lr": {"low": 0.0005, "high": 0.01, "log": True},
    "model.lr_schedule": {"choices": ["exponential", "one_cycle"]},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "model.weight_decay": {"choices": [0.0, 0.0001, 0.001]},
    "data.batch_size": {"choices": [64, 128, 256]},
    "data.augment_degrees": {"choices": [0.0, 10.0]},
    "data.augment_shift": {"choices": [0.0, 0.1]},
}
MONITOR = "val/acc"
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
# Quiet trials: tune prints one line per trial; everything else is in each trial's TensorBoard run.
TRIAL_DEFAULTS = ["--progress_bar.refresh_rate", "0", "--trainer.enable_model_summary", "false",
                  "--trainer.enable_autolog_hparams", "false"]
# A worker's trials that fail in a row before it stops: a mistake in the options, not bad luck.
FAILURES_IN_A_ROW = 3
# Seconds between a running trial's signs of life in the storage, and the silence after which
# another worker counts it as failed (a machine that died; a dead process on this machine is
# recognised at once).
HEARTBEAT_S, GRACE_S = 30, 120
# How often a search tries to open a database whose tables other searches are creating.
OPEN_ATTEMPTS = 8


@dataclass
class Search:
    """What one `tune` command asks for: the study, its space, the options every trial shares."""

    study: str
    storage: str
    folder: Path
    space: dict[str, BaseDistribution]
    fixed: list[str]
    trials: int
    timeout: Optional[float]
    pruner: str
    jobs: int


def main(argv: list[str]) -> int:
    search = parse(argv)
    quiet()
    reuse_freed_memory()  # every trial trains (hardware.py)
    check_fit_options(search)
    study = open_study(search)  # one line for a bad storage or another space, before any worker starts
    try:
        status = work(search, study) if search.jobs == 1 else work_in_processes(search)
    except KeyboardInterrupt:  # Optuna marked the trial in progress failed
        status = 130
    if status in (130, 143):
        print("Stopped; the same command continues the study.", file=sys.stderr)
    summarize(search, study)
    return status


def parse(argv: list[str]) -> Search:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit tune",
        description="Search for better `fit` options with Optuna. Any `fit` option (--config, --data.dataset, "
        "--trainer.max_epochs ...) is fixed for every trial; the search space adds the sampled ones.",
        epilog="`python -m mnist_lit fit --help` lists the fit options.",
        allow_abbrev=False,  # a fit option must never be taken for an abbreviation of one of these
    )
    parser.add_argument("--search", type=Path, default=None,
                        help="YAML search space: option -> {low, high[, log][, step]} or {choices: [...]} "
                        "or the name of one in configs/search/ (default: the one in configs/search/default.yaml)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    parser.add_argument("--timeout", type=float, default=None, help="start no trial after this many seconds")
    parser.add_argument("--study", default="search", help="the study's name, and its folder's (default: search)")
    parser.add_argument("--dir", type=Path, default=Path("studies"), help="where study folders go (default: studies)")
    parser.add_argument("--storage", default=None,
                        help="SQLAlchemy URL of the study's database (default: SQLite, DIR/STUDY/study.db)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes on this machine, sharing its cores")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="how unpromising trials are stopped early (default: median)")
    args, fixed = parser.parse_known_args(argv)
    for name, value, least in (("--trials", args.trials, 1), ("--jobs", args.jobs, 1)):
        if value < least:
            parser.error(f"{name} must be at least {least}, got {value}")
    if args.search:  # a shipped search space by name (`--search fashion_mnist`), from any folder
        args.search = Path(recipes.resolve(str(args.search), "search"))
    space = read_space(args.search) if args.search else {name: distribution(name, spec, "the default space")
                                                         for name, spec in DEFAULT_SPACE.items()}
    folder = args.dir / args.study
    storage = args.storage or default_storage(folder)
    return Search(args.study, storage, folder, space, fixed, args.trials, args.timeout, args.pruner, args.jobs)


def default_storage(folder: Path) -> str:
    return f"sqlite:///{folder / 'study.db'}"


def read_space(path: Path) -> dict[str, BaseDistribution]:
    """The search space in ``path``: one line for a file that is missing, not YAML, or a bad distribution."""
    try:
        specs = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"Cannot read the search space --search {path}: {error.strerror}.") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not YAML: {' '.join(str(error).split())}") from None
    if not isinstance(specs, dict) or not specs:
        raise UserError(f"{path} must map `fit` options to ranges or choices, e.g. `model.lr: {{low: 0.001, high: 0.01, log: true}}`.")
    return {str(name): distribution(str(name), spec, str(path)) for name, spec in specs.items()}


def distribution(option: str, spec: Any, source: str) -> BaseDistribution:
    """Optuna's distribution for ``{low, high[, log][, step]}`` (integers when low and high are) or ``{choices}``."""
    where = f"{source}: {option}"
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise UserError(f"{where} must be {{low: ..., high: ...}} or {{choices: [...]}}, got {spec!r}.")
    unknown = set(spec) - ({"choices"} if "choices" in spec else {"low", "high", "log", "step"})
    if unknown:
        raise UserError(f"{where} has unknown keys {sorted(unknown)}: a range takes low, high, log and step; "
                        "choices stand alone.")
    try:
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ValueError("choices must be a non-empty list")
            return CategoricalDistribution(spec["choices"])
        if "low" not in spec or "high" not in spec:
            raise ValueError("a range needs both low and high")
        low, high, step, log = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False))
        if all(type(value) is int for value in (low, high)) and (step is None or type(step) is int):
            return IntDistribution(low, high, log=log, step=step or 1)
        # YAML reads 1e-3 as a string (it wants 1.0e-3); both mean a number here.
        return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))
    except (ValueError, TypeError) as error:
        raise UserError(f"{where}: {error}.") from None


def quiet() -> None:
    """Only warnings from the libraries: tune prints one line per trial, the rest is in each trial's run."""
    from mnist_lit.commands.cli import quiet_irrelevant_messages

    quiet_irrelevant_messages()
    for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available", "Seed set" once per trial
        logging.getLogger(name).setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Addressed to code that passes LightningCLI both sys.argv and args by mistake; tune means it.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    # The heartbeat that lets another worker notice a dead one; Optuna marks the argument experimental.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def check_fit_options(search: Search) -> None:
    """Refuse, in one line, fixed options `fit` does not take and sampled values it would not accept."""
    from mnist_lit.commands.cli import build_cli, one_line_errors
    from mnist_lit.models.networks import check_network_name

    options = [*search.fixed, *overrides(search, "check")]
    with one_line_errors(search.fixed, "fit"):
        cli = build_cli(options, run=False)
    for name, distribution in search.space.items():
        values = distribution.choices if isinstance(distribution, CategoricalDistribution) else (distribution.low, distribution.high)
        for value in values:
            try:
                cli.parser.parse_args([*options, f"--{name}", as_option(value)])
                if name == "model.net":  # a string to the parser, which cannot list timm's names
                    check_network_name(str(value))
            except Exception as error:  # jsonargparse's ArgumentError, or a type's own ValueError
                reason = " ".join(str(error).split())
                raise UserError(f"The search space's {name} = {value!r} is not a `fit` option value: {reason} "
                                "(`python -m mnist_lit fit --help` lists the options).") from None


def as_option(value: Any) -> str:
    """A sampled value as it is written on the command line."""
    return value if isinstance(value, str) else json.dumps(value)


def as_options(params: dict[str, Any]) -> list[str]:
    """Sampled options as command-line arguments: ``--model.lr 0.002 ...``."""
    return [part for name, value in params.items() for part in (f"--{name}", as_option(value))]


def overrides(search: Search, run: str) -> list[str]:
    """Options of every trial: quiet, and its TensorBoard run and checkpoints in the study's folder."""
    return [*TRIAL_DEFAULTS, "--trainer.logger.init_args.save_dir", str(search.folder / "logs"),
            "--trainer.logger.init_args.name", "", "--trainer.logger.init_args.version", run,
            "--checkpoint.dirpath", str(search.folder / "checkpoints")]


def open_study(search: Search) -> optuna.Study:
    """The study, created or continued; its trials cut short on this machine marked failed."""
    shown = storage_shown(search.storage)
    if search.storage == default_storage(search.folder):
        search.folder.mkdir(parents=True, exist_ok=True)
    try:
        engine = {"connect_args": {"timeout": 60}} if search.storage.startswith("sqlite") else {}
        storage = rdb_storage(search.storage, engine)
        fail_abandoned_trials(storage, search.study)
        study = optuna.create_study(study_name=search.study, storage=storage, direction="maximize",
                                    load_if_exists=True, pruner=pruner(search.pruner))
    except UserError:
        raise
    except Exception as error:  # SQLAlchemy's errors for a host that does not answer, a driver not installed...
        reason = " ".join(str(error).split("\n")[0].split())
        raise UserError(f"Cannot open the study's storage {shown}: {reason} (check --storage).") from None
    space = {name: distribution_to_json(d) for name, d in search.space.items()}
    recorded = study.user_attrs.get("search_space")
    if recorded is None:
        study.set_user_attr("search_space", space)
    elif recorded != space:
        raise UserError(f"The study {search.study!r} in {shown} searches {sorted(recorded)} with other ranges than "
                        "this command's; pass another --study, or the --search it was started with.")
    return study


def rdb_storage(url: str, engine: dict) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``. Searches that start together on a new database all create its tables,
    and all but one find some made by another (an IntegrityError on a row, or SQLite's OperationalError
    "table ... already exists"). Such a search waits for the others to finish and opens what they made:
    retried at once, it met the next table still being created (seen with four processes on one file)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except (IntegrityError, OperationalError) as error:
            made_by_another = isinstance(error, IntegrityError) or "already exists" in str(error)
            if attempt == OPEN_ATTEMPTS - 1 or not made_by_another:
                raise
            time.sleep(0.1 * 2**attempt)  # 0.1 s, then twice as long each time: 12.7 s in all at most


def storage_shown(url: str) -> str:
    """The storage URL without its password, as it may be printed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"--storage {url!r} is not a database URL (e.g. sqlite:///study.db, postgresql://host/db).") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UserError(f"--storage {url} would keep the study in memory, lost at the end; name a file (sqlite:///study.db).")
    return parsed.render_as_string(hide_password=True)


def pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        # From the third epoch on, once five trials show what is typical: a one-cycle schedule is
        # still warming up in the first epochs, and would be stopped for being slow to start.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


WORKER = "worker"  # a trial's user attribute: the host and process id running it


def fail_abandoned_trials(storage: optuna.storages.RDBStorage, study_name: str) -> None:
    """Mark failed the running trials of processes of this machine that no longer exist (kill -9, a crash).

    Trials of other machines are marked failed by Optuna once their heartbeat has been silent for GRACE_S.
    """
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:  # a new study
        return
    host = socket.gethostname()
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not process_exists(int(pid)):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def process_exists(pid: int) -> bool:
    # Not os.kill(pid, 0): on Windows that ends the process instead of asking about it.
    import psutil

    return psutil.pid_exists(pid)


def work_in_processes(search: Search) -> int:
    """--jobs processes on one study, the machine's cores shared among them."""
    import multiprocessing

    threads = max(1, usable_cores() // search.jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or locks
    workers = [context.Process(target=work_and_exit, args=(search, threads)) for _ in range(search.jobs)]
    for worker in workers:
        worker.start()
    # SIGTERM (a scheduler stopping the job) reaches the workers, which mark their trials failed and stop.
    signal.signal(signal.SIGTERM, lambda *_: [worker.terminate() for worker in workers])
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials and stop
        for worker in workers:
            worker.join()
        raise
    return max(worker.exitcode or 0 for worker in workers)


def work_and_exit(search: Search, threads: int) -> None:
    """One of --jobs worker processes: its share of the cores, its own connection to the study."""
    from mnist_lit.core.errors import run_command

    torch.set_num_threads(threads)
    quiet()
    try:
        status = run_command(lambda _: work(search, open_study(search)), [])
    except KeyboardInterrupt:  # the parent got the same Ctrl-C and says so once
        status = 130
    raise SystemExit(status)


def work(search: Search, study: optuna.Study) -> int:
    """Run trials of ``study`` until it holds --trials finished ones, or --timeout has passed."""
    failures: list[str] = []
    stopped: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        ahead = [t for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING)) if t.number < trial.number]
        if len(ahead) >= search.trials:  # another worker started the last trial a moment before this one
            trial.set_user_attr("surplus", True)
            study.stop()
            raise Surplus()
        try:
            return run_trial(search, trial)
        except (optuna.TrialPruned, Surplus):
            raise
        except SystemExit as stop:  # how Lightning ends a fit on Ctrl-C (exit 1) and SIGTERM (SIGTERMException)
            sigterm = isinstance(stop, SIGTERMException)
            trial.set_user_attr("error", f"stopped by {'SIGTERM' if sigterm else 'Ctrl-C'}")
            stopped.append(143 if sigterm else 130)
            study.stop()
            raise Stopped() from None  # an Exception: Optuna marks the trial failed
        except Exception as error:  # (Ctrl-C outside a fit is a KeyboardInterrupt: Optuna marks the trial failed and stops)
            trial.set_user_attr("error", " ".join(f"{type(error).__name__}: {error}".split()))
            raise

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("surplus"):
            return
        print(trial_line(trial), flush=True)
        failures[:] = [*failures, trial.user_attrs.get("error", "")] if trial.state == TrialState.FAIL else []
        # Trials still running elsewhere count: they will finish the study, and starting another would overshoot.
        if len(failures) >= FAILURES_IN_A_ROW or enough(study, search.trials):
            study.stop()

    if enough(study, search.trials):
        return 0
    study.optimize(objective, timeout=search.timeout, callbacks=[after_trial], catch=(Exception,), gc_after_trial=True)
    if stopped:
        return stopped[0]  # the exit status of a process ended by that signal
    if len(failures) >= FAILURES_IN_A_ROW:
        raise UserError(f"{FAILURES_IN_A_ROW} trials in a row failed, the last with: {failures[-1]}")
    return 0


class Stopped(Exception):
    """The trial in progress when Ctrl-C or SIGTERM came; marked failed."""


class Surplus(Exception):
    """A trial started after the study had all the trials it asked for; marked failed, never run."""


def enough(study: optuna.Study, trials: int) -> bool:
    """Whether the finished and running trials make up the study's number."""
    return len(study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING))) >= trials


class Pruning(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, also keeping the best value of the monitored metric: the trial's value."""

    best: Optional[float] = None

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if not trainer.sanity_checking and value is not None:
            self.best = max(self.best or float("-inf"), float(value))
        super().on_validation_end(trainer, pl_module)


def run_trial(search: Search, trial: optuna.Trial) -> float:
    """One `fit` with the sampled options; its best validation accuracy."""
    from mnist_lit.commands.cli import build_cli

    params = {name: suggest(trial, name, distribution) for name, distribution in search.space.items()}
    cli = build_cli([*search.fixed, *as_options(params), *overrides(search, f"trial_{trial.number:04d}")], run=False)
    cli.trainer.checkpoint_callback.say_how_to_resume = False  # a stopped trial is not resumed: tune runs another
    pruning = Pruning(trial, monitor=MONITOR)
    cli.trainer.callbacks.append(pruning)
    # TensorBoard's HPARAMS tab: the model's and data's options, and the sampled ones by their option names.
    cli.trainer.logger.log_hyperparams({**cli.model.hparams_initial, **cli.datamodule.hparams_initial, **params})
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if pruning.best is None:
        raise UserError(f"The trial logged no {MONITOR}: it needs validation (check --trainer.limit_val_batches).")
    return pruning.best


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def trial_line(trial: FrozenTrial) -> str:
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    options = " ".join(f"{name}={format_value(value)}" for name, value in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        outcome = f"{MONITOR} {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        step = trial.last_step
        outcome = f"pruned after epoch {step + 1} ({MONITOR} {trial.intermediate_values[step]:.4f})" if step is not None else "pruned"
    else:
        outcome = f"failed: {trial.user_attrs.get('error', 'interrupted')}"
    return f"trial {trial.number}: {outcome}, {seconds:.0f} s  {options}"


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarize(search: Search, study: optuna.Study) -> None:
    """The best trials, the best options as a config `fit` runs, and the study's pictures."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    print(f"Study {search.study!r} ({storage_shown(search.storage)}): {len(trials)} trials, "
          + ", ".join(f"{count} {name}" for name, count in counts.items() if count))
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -t.value)
    if not complete:
        return
    names = list(search.space)
    print("\n".join(table([["trial", MONITOR, *names]] + [[str(t.number), f"{t.value:.4f}",
                          *(format_value(t.params.get(name, "")) for name in names)] for t in complete[:5]])))
    best = write_best_config(search, complete[0])
    print(f"Best options (trial {complete[0].number}): {best}; train with them: python -m mnist_lit fit --config {best}")
    pictures = draw_pictures(study, search.folder)
    if pictures:
        print(f"Pictures: {', '.join(map(str, pictures))}")
    print(f"Each trial's run: tensorboard --logdir {search.folder / 'logs'}; the study: optuna-dashboard {search.storage}")


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]


def write_best_config(search: Search, trial: FrozenTrial) -> Path:
    """Every `fit` option of the best trial (the fixed ones, and its sampled ones) as one YAML file."""
    from mnist_lit.commands.cli import build_cli
    from mnist_lit.core.atomic_files import replaced_atomically

    cli = build_cli([*search.fixed, *as_options(trial.params)], run=False)
    text = cli.parser.dump(cli.config)
    path = search.folder / "best.yaml"
    search.folder.mkdir(parents=True, exist_ok=True)
    header = f"# Study {search.study!r}, trial {trial.number}: {MONITOR} {trial.value:.4f}.\n"
    with replaced_atomically(path) as temporary:
        temporary.write_text(header + "# python -m mnist_lit fit --config " + str(path) + "\n" + text)
    return path


def draw_pictures(study: optuna.Study, folder: Path) -> list[Path]:
    """optimization history and parameter importances as PNG files (importances need two finished trials)."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as plots

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental", "too few trials for importances": the pictures say enough
        for name, draw in (("history.png", lambda: plots.plot_optimization_history(study)),
                           ("importances.png", lambda: plots.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator()))):
            try:
                axes = draw()
            except (ValueError, RuntimeError):  # too few finished trials, or all with the same options
                continue
            axes.figure.savefig(folder / name, dpi=100, bbox_inches="tight")
            matplotlib.pyplot.close(axes.figure)
            written.append(folder / name)
    return written
