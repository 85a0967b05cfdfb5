"""Streamed `fit` runs in processes of their own: killed and resumed in the middle of epochs, and on several
processes (data/streaming.py). Apart from tests/test_streaming.py so that the two files run side by side."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.cli import Output, run_cli, run_cli_process
from helpers.picture_sets import write_noise_folder

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent

STEPS, EPOCHS = 6, 3  # 3 classes of 40 pictures: 32 of each train, 96 pictures in batches of 16


def fit(run: Path, folder: Path, pause_at: tuple[int, int]) -> subprocess.Popen:
    """`fit --ckpt_path last` on the streamed folder, recording each step's pictures and holding after step
    ``pause_at`` (epoch, step within it, both from 1) until killed."""
    config = run / "callbacks.yaml"
    config.write_text(json.dumps({"trainer": {"callbacks": [
        {"class_path": "helpers.seen_pictures.RecordSeen", "init_args": {"path": str(run / "seen.jsonl")}},
        {"class_path": "helpers.pause_callback.PauseInEpoch", "init_args": {"epoch": pause_at[0], "step": pause_at[1]}},
    ]}}))
    command = [
        sys.executable, "-m", "mnist_lit", "fit", "--config", str(config), "--data.dataset", str(folder), "--data.stream", "true",
        "--data.batch_size", "16", "--trainer.max_epochs", str(EPOCHS), "--checkpoint.save_last_every_n_steps", "1",
        "--early_stopping.patience", "100", "--ckpt_path", "last",
    ]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.Popen(command, cwd=run, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_streamed_fit_killed_three_times_in_the_middle_of_epochs_sees_each_picture_once_an_epoch(tmp_path):
    folder, run = write_noise_folder(tmp_path / "noise", 3, 40), tmp_path / "run"
    run.mkdir()
    moments = sorted(random.Random(7).sample([(e, s) for e in range(1, EPOCHS + 1) for s in range(2, STEPS)], 3))
    kept = []  # the record of the steps each checkpoint resumed from holds
    for epoch, step in moments:
        process = fit(run, folder, (epoch, step))
        Output(process).until("paused in epoch")
        process.send_signal(signal.SIGKILL)
        process.wait()
        resumed_from = read_checkpoint(run / "checkpoints" / "version_0" / "last.ckpt")["global_step"]
        assert resumed_from == (epoch - 1) * STEPS + step - 1  # the step before the pause: a checkpoint every step
        kept += [line for line in read_record(run) if line["step"] <= resumed_from]
        (run / "seen.jsonl").unlink()
    finished = fit(run, folder, (EPOCHS + 1, 1))  # never pauses
    output, _ = finished.communicate(timeout=600)
    assert finished.returncode == 0, output[-3000:]
    kept += read_record(run)

    steps = sorted(line["step"] for line in kept)
    assert steps == list(range(1, EPOCHS * STEPS + 1))  # every step once: none repeated, none skipped
    for epoch in range(EPOCHS):
        seen = [picture for line in kept if line["epoch"] == epoch for picture in line["pictures"]]
        assert len(seen) == STEPS * 16 == len(set(seen)), f"epoch {epoch + 1}: a picture seen twice"
    assert len({picture for line in kept for picture in line["pictures"]}) == STEPS * 16  # the same 96 every epoch

    # `test` needs no data option: the checkpoint says which set and which part; each test picture counted once.
    tested = subprocess.run([sys.executable, "-m", "mnist_lit", "test"], cwd=run, capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
    report = json.loads(next((run / "logs").glob("version_*/report.json")).read_text())
    assert int(torch.tensor(report["confusion_matrix"]).sum()) == 12
    calibrated = subprocess.run([sys.executable, "-m", "mnist_lit", "calibrate"], cwd=run, capture_output=True, text=True, timeout=600)
    assert calibrated.returncode == 0 and " on 12 validation pictures" in calibrated.stdout, calibrated.stdout + calibrated.stderr


def read_record(run: Path) -> list[dict]:
    path = run / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_processes_stream_disjoint_shares_and_evaluate_every_picture_once(tmp_path):
    folder, run = write_noise_folder(tmp_path / "noise", 3, 40), tmp_path / "ddp"
    record = run / "seen.jsonl"
    ddp = ["--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--data.stream", "true", "--data.dataset", str(folder)]
    env = {"env": {"PYTHONPATH": str(TESTS)}}
    run_cli_process(run, tmp_path, "fit", *ddp, "--trainer.devices", "2", "--data.batch_size", "16", "--trainer.max_epochs", "1",
                    "--trainer.callbacks", "helpers.seen_pictures.RecordSeen", "--trainer.callbacks.init_args.path", str(record), **env)
    lines = read_record(run)
    by_rank = [{picture for line in lines if line["rank"] == rank for picture in line["pictures"]} for rank in (0, 1)]
    assert len(by_rank[0]) == len(by_rank[1]) == STEPS * 16 // 2 and not by_rank[0] & by_rank[1]  # half each, none shared

    checkpoint = str(next((run / "checkpoints" / "version_0").glob("epoch*.ckpt")))
    reports = {}
    # One process in this one; DDP in processes of their own (its launcher runs the command line again).
    for name, options in (("alone", []), ("three", [*ddp[:4], "--trainer.devices", "3"])):
        (run_cli_process if options else run_cli)(tmp_path / name, tmp_path, "test", "--ckpt_path", checkpoint, *options)
        reports[name] = json.loads(next((tmp_path / name / "logs").glob("version_*/report.json")).read_text())
    assert int(torch.tensor(reports["three"]["confusion_matrix"]).sum()) == 12  # 12 pictures over 3 processes: each once
    assert reports["three"]["confusion_matrix"] == reports["alone"]["confusion_matrix"]
