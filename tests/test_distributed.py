"""Training and testing with Lightning's DDP on the CPU (gloo), on the real MNIST files: two processes on one
machine, and two "nodes" (two processes with their own NODE_RANK and working folders, as two machines run it)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import REPO, run_cli, run_cli_process
from helpers.picture_sets import write_noise_folder

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow
TWO_PROCESSES = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, real_mnist) -> Path:
    run = tmp_path_factory.mktemp("ddp")
    # Processes of their own: Lightning's DDP launcher starts the other ranks by running the command line again.
    run_cli_process(run, real_mnist, "fit", *TWO_PROCESSES, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "150")
    return run


def test_two_processes_train_and_write_each_checkpoint_once(ddp_run):
    assert [p.name for p in (ddp_run / "logs").iterdir()] == ["version_0"]
    checkpoints = sorted(p.name for p in (ddp_run / "checkpoints" / "version_0").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == "last.ckpt", checkpoints
    state = read_checkpoint(ddp_run / "checkpoints" / "version_0" / "last.ckpt")
    # 150 steps per process, each on its own half of every batch of digits.
    assert state["global_step"] == 150
    score = next(s["best_model_score"] for s in state["callbacks"].values() if "best_model_score" in s)
    assert score >= 0.95


def evaluate(cwd: Path, data_dir: Path, checkpoint: str, *options: str) -> dict:
    """`test` of ``checkpoint``: in this process alone, or in processes of their own with DDP ``options``."""
    (run_cli_process if options else run_cli)(cwd, data_dir, "test", "--ckpt_path", checkpoint, *options)
    return json.loads((cwd / "logs" / "version_0" / "report.json").read_text())


@pytest.fixture(scope="module")
def one_process_report(ddp_run, real_mnist, tmp_path_factory) -> dict:
    return evaluate(tmp_path_factory.mktemp("one"), real_mnist, str(ddp_run / "checkpoints" / "version_0" / "last.ckpt"))


@pytest.mark.parametrize("processes", [2, 3])
def test_multi_process_test_metrics_equal_the_single_process_ones(ddp_run, real_mnist, tmp_path, one_process_report, processes):
    checkpoint = str(ddp_run / "checkpoints" / "version_0" / "last.ckpt")
    several = [*TWO_PROCESSES[:2], "--trainer.devices", str(processes), *TWO_PROCESSES[4:]]
    report = evaluate(tmp_path, real_mnist, checkpoint, *several)
    # Every test digit counted exactly once. 10,000 digits do not split evenly in three: a
    # sampler that padded them would count two digits twice; unsynced metrics would count a third.
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    for key in ("accuracy", "per_class", "macro_avg", "weighted_avg", "confusion_matrix"):
        assert report[key] == one_process_report[key], key


TWO_NODES = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_nodes(root: Path, data_dir: Path, *args: str, own_disks: bool = False) -> list[Path]:
    """``python -m mnist_lit ARGS`` as node 0 and node 1 of one run, each in its own folder; the folders.
    ``own_disks``: each node with a cache folder of its own, as machines without a shared disk."""
    port, folders = free_port(), [root / "node0", root / "node1"]
    nodes = []
    for rank, folder in enumerate(folders):
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MNIST_LIT_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO / "tests"), "NODE_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        if own_disks:
            env["MNIST_LIT_CACHE_DIR"] = str(root / f"cache{rank}")
        nodes.append(subprocess.Popen([sys.executable, "-m", "mnist_lit", *args, *TWO_NODES], cwd=folder, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for node in nodes:
        output, _ = node.communicate(timeout=900)
        assert node.returncode == 0, output[-3000:]
    return folders


@pytest.fixture(scope="module")
def two_node_fit(tmp_path_factory, real_mnist) -> tuple[list[Path], list[dict]]:
    root = tmp_path_factory.mktemp("nodes")
    record = root / "record.jsonl"
    recorder = ["--trainer.callbacks", "helpers.node_recorder.RecordNode", "--trainer.callbacks.init_args.path", str(record)]
    folders = run_two_nodes(root, real_mnist, "fit", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "40", *recorder)
    return folders, [json.loads(line) for line in record.read_text().splitlines()]


def test_two_nodes_train_on_disjoint_shards_and_prepare_the_data_once_each(two_node_fit):
    _, events = two_node_fit
    assert sorted(e["node"] for e in events if e["event"] == "prepare_data") == [0, 1]
    dealt = {e["rank"]: set(e["indices"]) for e in events if e["event"] == "train"}
    assert sorted(dealt) == [0, 1] and all(e["world_size"] == 2 for e in events if e["event"] == "train")
    assert len(dealt[0]) == len(dealt[1]) == 40 * 128 and not dealt[0] & dealt[1]


def test_only_the_first_node_writes_checkpoints_and_logs(two_node_fit):
    (node0, node1), _ = two_node_fit
    assert sorted(p.name for p in (node0 / "checkpoints" / "version_0").iterdir())[-1] == "last.ckpt"
    assert (node0 / "logs" / "version_0" / "config.yaml").is_file()
    assert list(node1.iterdir()) == []
    assert read_checkpoint(node0 / "checkpoints" / "version_0" / "last.ckpt")["global_step"] == 40


def test_two_node_test_metrics_equal_the_single_process_ones(two_node_fit, real_mnist, tmp_path):
    (node0, _), _ = two_node_fit
    checkpoint = str(node0 / "checkpoints" / "version_0" / "last.ckpt")
    single = evaluate(tmp_path / "one", real_mnist, checkpoint)
    node0, node1 = run_two_nodes(tmp_path / "nodes", real_mnist, "test", "--ckpt_path", checkpoint)
    report = json.loads(next(node0.glob("logs/*/report.json")).read_text())
    assert list(node1.iterdir()) == []  # the report, figures and logs come from the first node alone
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    for key in ("accuracy", "per_class", "macro_avg", "weighted_avg", "confusion_matrix"):
        assert report[key] == single[key], key


def test_two_nodes_stream_a_folder_each_from_its_own_chunks_in_disjoint_shares(tmp_path):
    folder, record = write_noise_folder(tmp_path / "noise", 3, 40), tmp_path / "seen.jsonl"
    recorder = ["--trainer.callbacks", "helpers.seen_pictures.RecordSeen", "--trainer.callbacks.init_args.path", str(record)]
    streamed = ["--data.dataset", str(folder), "--data.stream", "true", "--data.batch_size", "16"]
    node0, node1 = run_two_nodes(tmp_path, tmp_path, "fit", "--trainer.max_epochs", "1", *streamed, *recorder, own_disks=True)
    assert all(list((tmp_path / f"cache{rank}").glob("*.chunks")) for rank in (0, 1))  # each machine wrote its own
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    dealt = [{picture for line in lines if line["rank"] == rank for picture in line["pictures"]} for rank in (0, 1)]
    assert len(dealt[0]) == len(dealt[1]) == 48 and not dealt[0] & dealt[1]  # 96 training pictures, half each
    assert list(node1.iterdir()) == [] and (node0 / "checkpoints" / "version_0" / "last.ckpt").is_file()
