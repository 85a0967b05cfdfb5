"""Interrupting `fit` with SIGKILL or Ctrl-C and resuming it with `--ckpt_path last`, on the real MNIST files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
from helpers.cli import Output, run_cli
from helpers.pause_callback import PAUSED

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
# Three short epochs: enough to interrupt one in the middle and still compare the end.
STEPS_PER_EPOCH = 60
OPTIONS = ["--trainer.max_epochs", "3", "--trainer.limit_train_batches", str(STEPS_PER_EPOCH)]
PAUSE_IN_SECOND_EPOCH = ["--trainer.callbacks", "helpers.pause_callback.PauseInEpoch"]


def fit(cwd: Path, data_dir: Path, *args: str, env: Optional[dict] = None) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "MNIST_LIT_DATA_DIR": str(data_dir), "PYTHONPATH": str(TESTS), **(env or {})}
    command = [sys.executable, "-m", "mnist_lit", "fit", *OPTIONS, *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=answer_ctrl_c,
    )


def answer_ctrl_c() -> None:
    # A shell starts background jobs (`pytest &`) with SIGINT ignored, and the child would inherit
    # that: `fit` must see the Ctrl-C the test sends, however pytest itself was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


def fit_here(cwd: Path, data_dir: Path, *args: str) -> str:
    """The same `fit` run to its end in this process (nothing to interrupt): what it printed, stdout and stderr."""
    result = run_cli(cwd, data_dir, "fit", *OPTIONS, *args)
    return result.stdout + result.stderr


def last_state(cwd: Path) -> dict:
    checkpoint = read_checkpoint(cwd / "checkpoints" / "version_0" / "last.ckpt")
    early_stopping = next(s for k, s in checkpoint["callbacks"].items() if k.startswith("EarlyStopping"))
    return {
        "epoch": checkpoint["epoch"],
        "global_step": checkpoint["global_step"],
        "lr": checkpoint["optimizer_states"][0]["param_groups"][0]["lr"],
        "scheduler_epochs": checkpoint["lr_schedulers"][0]["last_epoch"],
        "val_acc": early_stopping["best_score"].item(),
    }


def test_a_killed_fit_resumes_where_it_stopped(tmp_path, real_mnist):
    # One process at a time: two of them would share 2 cores between 4 threads, and OpenMP's
    # waiting threads make that several times slower, not twice.
    fit_here(tmp_path / "uninterrupted", real_mnist)

    # The same command starts the run and resumes it: what a job that is requeued needs.
    killed = fit(tmp_path / "killed", real_mnist, "--ckpt_path", "last", *PAUSE_IN_SECOND_EPOCH)
    printed = Output(killed).until(PAUSED)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert "No checkpoint under checkpoints/ yet: starting a new run." in printed
    assert "\nEpoch 1/3:" in printed  # the first epoch ended, with its checkpoint
    run = tmp_path / "killed"
    assert last_state(run)["epoch"] == 0

    resumed_output = fit_here(run, real_mnist, "--ckpt_path", "last")

    assert "Restoring states from the checkpoint path at checkpoints/version_0/last.ckpt" in resumed_output
    # The same run continues: no new version, the epoch counter, step, LR schedule and
    # early-stopping state carried over.
    assert [p.name for p in (run / "logs").iterdir()] == ["version_0"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["version_0"]
    assert "Epoch 2/3:" in resumed_output and "Epoch 1/3:" not in resumed_output
    resumed, reference = last_state(run), last_state(tmp_path / "uninterrupted")
    assert {k: resumed[k] for k in ("epoch", "global_step", "scheduler_epochs")} == {
        k: reference[k] for k in ("epoch", "global_step", "scheduler_epochs")
    }
    assert resumed["lr"] == pytest.approx(reference["lr"])
    # The resumed epochs see the digits in another order, so the result matches within noise.
    assert resumed["val_acc"] == pytest.approx(reference["val_acc"], abs=0.01)
    # Nothing half-written: only complete checkpoints, no temporary files left in the run folder.
    names = sorted(p.name for p in (run / "checkpoints" / "version_0").iterdir())
    assert names[-1] == "last.ckpt" and all(name.endswith(".ckpt") for name in names), names


def test_ctrl_c_stops_gracefully_and_says_how_to_resume(tmp_path, real_mnist):
    run = tmp_path / "interrupted"
    process = fit(run, real_mnist, *PAUSE_IN_SECOND_EPOCH)
    printed = Output(process)
    printed.until(PAUSED)
    process.send_signal(signal.SIGINT)
    output = printed.until(None, timeout=60)
    assert process.wait(timeout=60) != 0
    assert "Traceback" not in output
    assert "python -m mnist_lit fit --ckpt_path last" in output
    assert last_state(run)["epoch"] == 0  # the finished epoch's checkpoint, whole


def test_slurm_requeue_signal_saves_the_moment_and_last_resumes_from_it(tmp_path, real_mnist):
    # A SLURM job as Lightning recognises one, and an `scontrol` that records the requeue it is asked for.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/scontrol.txt\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "mnist", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    run = tmp_path / "job"
    job = fit(run, real_mnist, "--ckpt_path", "last", *PAUSE_IN_SECOND_EPOCH, env=slurm)
    printed = Output(job)
    printed.until(PAUSED)
    job.send_signal(signal.SIGUSR1)  # what SLURM sends before the job's time runs out (sbatch --signal)
    deadline = time.monotonic() + 120
    while not (tmp_path / "scontrol.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "4242"]
    job.send_signal(signal.SIGKILL)  # the job ends; SLURM starts it again with the same command
    job.wait()
    saved = read_checkpoint(run / "hpc_ckpt_1.ckpt")
    assert saved["global_step"] == STEPS_PER_EPOCH + 10  # the moment of the signal, mid-way through epoch 2

    resumed_output = finish(fit(run, real_mnist, "--ckpt_path", "last", env=slurm))
    assert "Restoring states from the checkpoint path at hpc_ckpt_1.ckpt" in resumed_output
    assert [p.name for p in (run / "logs").iterdir()] == ["version_0"]  # the same run continues
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["version_0"]
    assert last_state(run)["epoch"] == 2
