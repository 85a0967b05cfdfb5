"""How fast mnist-lit trains, against a bare PyTorch loop and end to end.

    python benchmarks/speed.py                      # 15-35 minutes on 2 CPU cores
    python benchmarks/speed.py --accelerator gpu    # the same on a GPU
    python benchmarks/speed.py --keras_python PY    # adds the Keras model, run by PY (3 minutes)
    python benchmarks/speed.py --precision 32-true  # everything in fp32, as on a CPU without bf16

Latest result (2026-12-07, 2-core Intel Xeon with AVX-512 BF16 and AMX, `--precision 32-true`):
configs/speedrun.yaml 9.2 s end to end (median), 99.16% mean test accuracy over seeds 10-19; the
default 5-epoch `fit` 74.4 s, Keras 49.0 s in the same run; the default's training epochs reach 50%
of the machine's fp32 peak (161 GFLOP/s of matrix products; bf16 842), the bare loop 64%, the
speedrun's epoch 39%. docs/speed.md has the table.

Measures, in one run on one machine:
  0. the training FLOPs of one digit (Lightning's measure_flops) and the machine's peak FLOP/s (large
     matrix products in fp32 and bf16), and the share of that peak each loop and `fit` below reaches;
  1. a bare PyTorch loop (same network, optimizer, batch size and precision; the digits in
     memory as uint8 tensors, cut into batches by indexing) in images/s, with and without the
     default's pictures of no class, and a few other settings;
  2. mnist-lit's own training path through Lightning, epoch for epoch against (1), and a
     minimal LightningModule beside it (Lightning's own share of the difference);
  3. `python -m mnist_lit --help` beside `python -c "import lightning"`;
  4. `python -m mnist_lit fit` end to end in a subprocess, with the default config, configs/fast.yaml
     (seeds 42-44) and configs/speedrun.yaml (seeds 10-19): wall time, time to the first training
     step (step by step: imports, data, model, Lightning's set-up), time per epoch, peak memory, and the
     test accuracy of the best checkpoint.
Every timing is repeated and reported as the median. Prints a table and writes JSON.
The data comes from --data_dir, else $MNIST_LIT_DATA_DIR, else ./data, as for mnist-lit.
"""

import argparse
import contextlib
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from lightning.fabric.utilities.throughput import measure_flops

from mnist_lit.checkpoints.finding import resolve_checkpoint
from mnist_lit.commands.cli import main as mnist_lit_main
from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import fast_precision, reuse_freed_memory
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.outliers import synthetic_outliers
from mnist_lit.data.sets import DATASETS, normalize
from mnist_lit.models.classifier import OUTLIER_SHARE, ImageClassifier
from mnist_lit.models.networks import (
    DEFAULT_NETWORK,
    SIZE_OPTIONS,
    build_network,
    chosen_network,
)

REPO = Path(__file__).resolve().parent.parent
# What a default `fit` of MNIST trains (--model.net auto); the bare loops and the minimal module train it too.
DIGITS_NETWORK = chosen_network(DEFAULT_NETWORK, DATASETS["mnist"].pictures)


class EpochClock(L.Callback):
    """Wall-clock times of a run's milestones, written as JSON when training ends.

    The end-to-end runs load it with --trainer.callbacks+=speed.EpochClock, so this module
    must stay cheap to import.
    """

    def __init__(self, output: str) -> None:
        self.output = output
        # Start-up milestones. LightningCLI makes the callbacks once the imports are done and the options parsed;
        # the callbacks' setup runs after the data module's, on_fit_start after the model is built (with its
        # pictures of no class: configure_model) and the optimizer made, on_train_start after the sanity check.
        self.milestones = {"imports and options": time.time()}
        self.first_step = None
        self.train_seconds: list[float] = []
        self.val_seconds: list[float] = []

    def setup(self, trainer, pl_module, stage: str) -> None:
        self.milestones.setdefault("data", time.time())

    def on_fit_start(self, trainer, pl_module) -> None:
        self.milestones.setdefault("model, its outliers, optimizer", time.time())

    def on_train_start(self, trainer, pl_module) -> None:
        self.milestones.setdefault("Lightning's set-up and sanity check", time.time())

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start = time.time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step is None:
            self.first_step = time.time()
            self.milestones["first training step"] = self.first_step

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.val_start = time.time()
        if not trainer.sanity_checking:
            self.train_seconds.append(self.val_start - self.epoch_start)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.val_seconds.append(time.time() - self.val_start)

    def on_train_end(self, trainer, pl_module) -> None:
        clock = {"first_step": self.first_step, "milestones": self.milestones, "train_seconds": self.train_seconds,
                 "val_seconds": self.val_seconds}
        Path(self.output).write_text(json.dumps(clock))


def load_training_digits(data_dir: str | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    data = ImageDataModule(data_dir, download=False)
    data.setup("fit")
    return data.train_set.images.to(device), data.train_set.labels.to(device)


def bare_epoch_seconds(
    images, labels, precision: str, channels_last: bool, compile: bool, epochs: int, batch_size=128, network=DIGITS_NETWORK,
    outliers=None,
):
    """Seconds per training epoch of a plain PyTorch loop, and the one-off seconds before it (compile).

    With ``outliers``, each step also trains on a quarter batch of them as mnist-lit's default does
    (models/classifier.py): the same pictures per step, so that the comparison is of the loops, not the recipes.
    """
    device = images.device
    net = build_network(network, 10).to(device)
    mnist = DATASETS["mnist"]
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, fused=True)
    if compile:
        # Count a first run's compile time, as a user would see it, not a cached one.
        torch._inductor.config.force_disable_caches = True
    model = torch.compile(net) if compile else net
    use_bf16 = precision == "bf16-mixed"

    def step(index):
        batch = images[index]
        if outliers is not None:
            batch = torch.cat([batch, outliers[torch.randint(len(outliers), (round(OUTLIER_SHARE * len(index)),), device=device)]])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(normalize(batch, mnist.mean, mnist.std))
            loss = F.cross_entropy(logits[: len(index)], labels[index])
            if outliers is not None:
                spread = -logits[len(index):].float().log_softmax(dim=1).mean(dim=1) - math.log(logits.shape[1])
                loss = loss + 0.5 * spread.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step(torch.arange(batch_size, device=device))  # compilation, allocator and kernel warm-up
    sync()
    warm_up = time.perf_counter() - start
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(labels), device=device)
        for first in range(0, len(labels) - batch_size + 1, batch_size):  # drop_last, like mnist-lit
            step(order[first : first + batch_size])
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds, warm_up


class MinimalClassifier(L.LightningModule):
    """The least a LightningModule can be for this training: the network, the loss, fused Adam.

    Timed beside mnist-lit to split the framework's cost into Lightning's own per-step machinery
    (this) and what mnist-lit adds on top: metrics, logging, callbacks, the nan check.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = build_network(DIGITS_NETWORK, 10).to(memory_format=torch.channels_last)

    def training_step(self, batch, batch_idx):
        images, labels = batch  # uint8 pixels, as mnist-lit's data module hands them out
        mnist = DATASETS["mnist"]
        return F.cross_entropy(self.net(normalize(images, mnist.mean, mnist.std)), labels)

    def validation_step(self, batch, batch_idx) -> None:
        pass  # only so that validation starts, where EpochClock ends the epoch's training time

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3, fused=True)


def minimal_lightning_epoch_seconds(data_dir: str | None, accelerator: str, precision: str) -> float:
    """Training seconds of one epoch of MinimalClassifier: a Trainer with every extra switched off."""
    clock = EpochClock(output=os.devnull)
    trainer = L.Trainer(max_epochs=1, accelerator=accelerator, precision=precision, callbacks=[clock], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=1, num_sanity_val_steps=0)  # one batch: EpochClock times up to validation
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(MinimalClassifier(), datamodule=ImageDataModule(data_dir, download=False))
    return clock.train_seconds[0]


def lightning_epoch_seconds(data_dir: str | None, accelerator: str, precision: str, epochs: int, workdir: Path) -> list[float]:
    """Training seconds per epoch of `python -m mnist_lit fit`, run in this process."""
    clock_file = workdir / "clock.json"
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # a non-terminal, as for the subprocess runs
            mnist_lit_main(
                ["fit", f"--trainer.max_epochs={epochs}", f"--trainer.accelerator={accelerator}",
                 f"--trainer.precision={precision}", f"--trainer.callbacks+={__name__}.EpochClock", f"--trainer.callbacks.output={clock_file}"]
                + ([f"--data.data_dir={data_dir}"] if data_dir else [])
            )
    finally:
        os.chdir(cwd)
    return json.loads(clock_file.read_text())["train_seconds"]


def end_to_end(args: list[str], data_dir: str | None, accelerator: str, precision: str, workdir: Path) -> dict:
    """`python -m mnist_lit fit ARGS` in a fresh process: times, peak memory, test accuracy."""
    workdir.mkdir(parents=True)
    clock_file = workdir / "clock.json"
    command = [sys.executable, "-m", "mnist_lit", "fit", *args, f"--trainer.accelerator={accelerator}", f"--trainer.precision={precision}",
               "--trainer.callbacks+=speed.EpochClock", f"--trainer.callbacks.output={clock_file}"]
    if data_dir:
        command.append(f"--data.data_dir={data_dir}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
    started = time.time()
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.time() - started
    if status != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{stderr}")
    clock = json.loads(clock_file.read_text())
    checkpoint = resolve_checkpoint(None, workdir / "checkpoints")
    # Each start-up step's seconds: from the process start (or the step before) to its milestone.
    moments = [started, *clock["milestones"].values()]
    steps = {name: moments[i + 1] - moments[i] for i, name in enumerate(clock["milestones"])}
    return {
        "wall_s": wall,
        "startup_s": clock["first_step"] - started,
        **{f"startup {name} s": seconds for name, seconds in steps.items()},
        "epochs": len(clock["train_seconds"]),
        "train_epoch_s": statistics.median(clock["train_seconds"]),
        "val_epoch_s": statistics.median(clock["val_seconds"]),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "test_acc": test_accuracy(checkpoint, data_dir, accelerator, precision),
    }


def test_accuracy(checkpoint: Path, data_dir: str | None, accelerator: str, precision: str) -> float:
    model = ImageClassifier.load_from_checkpoint(checkpoint, weights_only=True)
    trainer = L.Trainer(accelerator=accelerator, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    [metrics] = trainer.test(model, ImageDataModule(data_dir, download=False), verbose=False)
    return metrics["test/acc"]


def recipe_network(config: str) -> tuple[str, dict]:
    """The network a recipe of configs/ trains and the sizes it gives, as training_flops_per_image takes them."""
    model = yaml.safe_load((REPO / "configs" / config).read_text()).get("model", {})
    return chosen_network(model.get("net", DEFAULT_NETWORK), "handwriting"), {key: model[key] for key in SIZE_OPTIONS if key in model}


def training_flops_per_image(network: str = DIGITS_NETWORK, sizes: Optional[dict] = None) -> int:
    """Forward + backward FLOPs of one image (a multiply-add counts two), counted by Lightning's FLOP counter
    (torch's FlopCounterMode) on the meta device."""
    with torch.device("meta"):  # two pictures: a batch-norm layer in training needs more than one
        net, images = build_network(network, 10, **(sizes or {})), torch.empty(2, 1, 28, 28)
    return measure_flops(net, lambda: net(images), lambda logits: logits.sum()) // 2


def peak_flops_per_s(device: torch.device, dtype: torch.dtype, side: int = 2048, rounds: int = 5) -> float:
    """The machine's practical arithmetic roof in ``dtype``: FLOP/s of large square matrix products (2 side³ each),
    the median of ``rounds`` rounds of a second or so. Convolutions run on the same kernels (oneDNN, cuBLAS/cuDNN)
    at best at this rate; on a CPU without native bf16, bf16 products are converted and slower than fp32."""
    a, b = (torch.randn(side, side, device=device).to(dtype) for _ in range(2))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    a @ b  # warm-up: kernel choice, thread pool
    sync()
    start = time.perf_counter()
    a @ b
    sync()
    repeats = max(1, math.ceil(1.0 / max(time.perf_counter() - start, 1e-6)))  # about a second per round
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync()
        rates.append(2 * side**3 * repeats / (time.perf_counter() - start))
    return statistics.median(rates)


def roofline(flops: dict[str, int], peaks: dict[str, float], precision: str, result: dict) -> tuple[dict, list]:
    """The achieved share of the machine's roof, for the bare loop, mnist-lit's epochs, and each end-to-end `fit`
    (its training epochs, and its whole wall time from process start). The roof is the faster of the fp32 and bf16
    products: a CPU without native bf16 converts it (slower than fp32), and one with AVX-512 BF16 but no AMX may
    still multiply fp32 faster; training in either precision does the same count of operations. A run held to
    fp32 is measured against the fp32 roof."""
    roof_name = max(peaks, key=peaks.get)
    if precision == "32-true" and roof_name != "fp32":
        # Training held to fp32 (--precision) on a CPU whose bf16 is faster: the share of what fp32 can do, the
        # roof of a CPU without native bf16, which such a run stands in for.
        roof_name = "fp32"
    roof = peaks[roof_name]
    loops = result["loops"]
    images = loops["train_images"]  # per epoch, the last partial batch dropped as `fit` does
    with_outliers = flops["default"] * images * (1 + OUTLIER_SHARE)  # an epoch of the default, a quarter batch more per step
    achieved = {
        "bare loop": flops["default"] * images / loops["bare_epoch_s"],
        "bare loop with the default's outliers": with_outliers / loops["bare_outliers_epoch_s"],
        "mnist-lit through Lightning, default recipe": with_outliers / loops["lightning_epoch_s"],
    }
    for name, outliers in (("default", True), ("speedrun", False)):
        run = result.get(f"fit_{name}", {}).get("median")
        if run:
            per_epoch = flops[name] * images * ((1 + OUTLIER_SHARE) if outliers else 1)
            achieved[f"fit {name}: training epochs"] = per_epoch / run["train_epoch_s"]
            achieved[f"fit {name}: whole wall time"] = per_epoch * run["epochs"] / run["wall_s"]
    shares = {name: {"gflop_per_s": rate / 1e9, "share_of_peak": rate / roof} for name, rate in achieved.items()}
    rows = [("peak, large matrix products: fp32; bf16", f"{peaks['fp32'] / 1e9:,.0f}; {peaks['bf16'] / 1e9:,.0f} GFLOP/s"),
            ("training FLOPs per digit: default; speedrun", f"{flops['default'] / 1e6:.1f}; {flops['speedrun'] / 1e6:.1f} MFLOP")]
    rows += [(f"share of the peak ({roof_name}), training in {precision}: {name}",
              f"{100 * share['share_of_peak']:.0f}% ({share['gflop_per_s']:,.0f} GFLOP/s)") for name, share in shares.items()]
    record = {"peak_gflop_per_s": {k: v / 1e9 for k, v in peaks.items()}, "roof": roof_name, "training_flops_per_image": flops,
              "achieved": shares}
    return record, rows


def compare_loops(args, images, labels, precision: str) -> tuple[dict, list]:
    """Bare loop against mnist-lit through Lightning, epoch for epoch, plus bare-loop variants."""
    train_images = len(labels) // 128 * 128
    result, rows = {}, []
    # mnist-lit's default trains on a quarter batch of pictures of no class besides each batch of
    # digits (models/classifier.py); the bare loop is timed with and without them.
    outliers = synthetic_outliers(4096, 28, 1, handwriting=True).to(images.device)
    # Alternating the four keeps slow drifts of a shared machine out of their ratios.
    bare, bare_outliers, minimal, lightning = [], [], [], []
    for _ in range(args.epochs + 1):  # the first round is a warm-up
        bare += bare_epoch_seconds(images, labels, precision, channels_last=True, compile=False, epochs=1)[0]
        bare_outliers += bare_epoch_seconds(images, labels, precision, True, False, epochs=1, outliers=outliers)[0]
        minimal.append(minimal_lightning_epoch_seconds(args.data_dir, args.accelerator, precision))
        with tempfile.TemporaryDirectory() as tmp:
            lightning += lightning_epoch_seconds(args.data_dir, args.accelerator, precision, 1, Path(tmp))
    bare, bare_outliers, minimal, lightning = (statistics.median(seconds[1:]) for seconds in (bare, bare_outliers, minimal, lightning))
    result["train_images"] = train_images
    result["bare_epoch_s"], result["bare_outliers_epoch_s"] = bare, bare_outliers
    result["minimal_lightning_epoch_s"], result["lightning_epoch_s"] = minimal, lightning
    result["bare_img_per_s"], result["lightning_img_per_s"] = train_images / bare, train_images / lightning
    result["lightning_to_bare_outliers"], result["minimal_lightning_to_bare"] = lightning / bare_outliers, minimal / bare
    rows.append((f"bare loop, {precision}, channels_last", f"{train_images / bare:,.0f} img/s, {bare:.2f} s/epoch"))
    rows.append(("  the same with the default's outliers (a quarter batch more)", f"{train_images / bare_outliers:,.0f} img/s, "
                 f"{bare_outliers:.2f} s/epoch"))
    rows.append(("mnist-lit through Lightning, default recipe", f"{train_images / lightning:,.0f} img/s, {lightning:.2f} s/epoch"))
    rows.append(("Lightning epoch / bare epoch with outliers", f"{lightning / bare_outliers:.3f}"))
    rows.append(("  a minimal LightningModule / bare epoch", f"{minimal / bare:.3f} (Lightning's own per-step cost)"))

    variants = {
        "fp32, NCHW": ("32-true", False, False, DIGITS_NETWORK),
        "fp32, channels_last": ("32-true", True, False, DIGITS_NETWORK),
        f"{precision}, channels_last, torch.compile": (precision, True, True, DIGITS_NETWORK),
        f"--model.net batchnorm_cnn, {precision}, channels_last": (precision, True, False, "batchnorm_cnn"),
    }
    result["bare_variants"] = {}
    for name, (variant_precision, channels_last, compile, network) in variants.items():
        seconds, warm_up = bare_epoch_seconds(
            images, labels, variant_precision, channels_last, compile, args.epochs, network=network
        )
        epoch = statistics.median(seconds)
        result["bare_variants"][name] = {"epoch_s": epoch, "img_per_s": train_images / epoch, "warm_up_s": warm_up}
        compile_note = f" (+{warm_up:.0f} s to compile)" if compile else ""
        rows.append((f"bare loop, {name}", f"{train_images / epoch:,.0f} img/s, {epoch:.2f} s/epoch{compile_note}"))
    return result, rows


def end_to_end_summary(
    name: str, config_args: list[str], args, precision: str, seeds: range, bare: Optional[dict] = None,
) -> tuple[dict, list]:
    """`fit` with one config for several seeds: medians, and the test accuracy of every seed (with their mean and
    standard deviation). ``bare``, the bare loop's epoch seconds of the same recipe: the wall time's ratio to them."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = [end_to_end(config_args + [f"--seed_everything={seed}"], args.data_dir, args.accelerator, precision,
                           Path(tmp) / str(seed))
                for seed in seeds]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    ratio = ""
    if bare is not None:
        median["wall_to_bare_epochs"] = median["wall_s"] / (median["epochs"] * bare["bare_epoch_s"])
        median["wall_to_bare_outliers_epochs"] = median["wall_s"] / (median["epochs"] * bare["bare_outliers_epoch_s"])
        ratio = (f"; {median['wall_to_bare_epochs']:.2f}x the bare loop's epochs, "
                 f"{median['wall_to_bare_outliers_epochs']:.2f}x with the outliers")
    accuracies = [run["test_acc"] for run in runs]
    accuracy = {"mean": statistics.mean(accuracies), "std": statistics.stdev(accuracies) if len(runs) > 1 else 0.0,
                "min": min(accuracies)}
    listed = " / ".join(f"{value:.2%}" for value in accuracies) if len(runs) <= 3 else ""
    spread = f"mean {accuracy['mean']:.2%}, std {100 * accuracy['std']:.2f} points, lowest {accuracy['min']:.2%}"
    rows = [
        (f"fit {name}: wall time, process start to exit, median", f"{median['wall_s']:.1f} s ({median['epochs']:.0f} epochs{ratio})"),
        (f"fit {name}: time to the first training step", f"{median['startup_s']:.1f} s: " + ", ".join(
            f"{key[len('startup '):-len(' s')]} {value:.1f}" for key, value in median.items() if key.startswith("startup "))),
        (f"fit {name}: per epoch, training + validation", f"{median['train_epoch_s']:.2f} s + {median['val_epoch_s']:.2f} s"),
        (f"fit {name}: peak memory", f"{median['peak_rss_mb']:,.0f} MB"),
        (f"fit {name}: test accuracy, seeds {seeds[0]}-{seeds[-1]}", f"{listed}{' (' if listed else ''}{spread}{')' if listed else ''}"),
    ]
    return {"median": median, "test_acc": accuracy, "runs": runs}, rows


def startup_summary(rounds: int = 5) -> tuple[dict, list]:
    """`python -m mnist_lit --help` (the list of commands) against `python -c "import lightning"`, medians of fresh processes."""
    commands = {"help": [sys.executable, "-m", "mnist_lit", "--help"], "import_lightning": [sys.executable, "-c", "import lightning"]}
    seconds = {name: [] for name in commands}
    for _ in range(rounds):  # alternating, so that a shared machine's drift lands on both
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    rows = [("python -m mnist_lit --help; python -c 'import lightning'", f"{median['help']:.2f} s; {median['import_lightning']:.2f} s")]
    return median, rows


def keras_summary(args) -> tuple[dict, list]:
    """The Keras original's fit (benchmarks/keras_reference.py) in the given Python, for a side-by-side."""
    runs = []
    for _ in range(args.runs):
        command = [args.keras_python, str(REPO / "benchmarks" / "keras_reference.py"), "--json"]
        if args.data_dir:
            command += ["--data_dir", args.data_dir]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise SystemExit(f"error: {' '.join(command)} failed:\n{finished.stderr}")
        runs.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    median = {key: statistics.median(run[key] for run in runs) for key in ("wall_s", "startup_s", "epoch_s", "test_acc")}
    rows = [
        ("Keras original: wall time, process start to end of fit", f"{median['wall_s']:.1f} s"),
        ("Keras original: start-up; per epoch, training + validation", f"{median['startup_s']:.1f} s; {median['epoch_s']:.2f} s"),
        ("Keras original: test accuracy", f"{median['test_acc']:.2%} ({runs[0]['keras']})"),
    ]
    return {"median": median, "runs": runs}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per setting (median reported)")
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs (seeds) per config (median reported)")
    parser.add_argument("--no_end_to_end", action="store_true", help="only the training-loop comparison")
    parser.add_argument("--keras_python", help="a Python with TensorFlow: also time benchmarks/keras_reference.py")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"],
                        help="what every loop and `fit` trains in (default: what mnist-lit picks on this machine); "
                        "32-true on a CPU with bf16 stands in for one without it")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "speed.json"))
    args = parser.parse_args()
    reuse_freed_memory()  # what mnist-lit does at start-up, so the bare loop gets it too
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    precision = args.precision or fast_precision(args.accelerator)
    images, labels = load_training_digits(args.data_dir, device)
    flops = {"default": training_flops_per_image(), "speedrun": training_flops_per_image(*recipe_network("speedrun.yaml"))}
    peaks = {"fp32": peak_flops_per_s(device, torch.float32), "bf16": peak_flops_per_s(device, torch.bfloat16)}
    result = {"date": date.today().isoformat(), "machine": machine(device), "precision": precision,
              "command": " ".join(["python", *sys.argv])}
    result["loops"], rows = compare_loops(args, images, labels, precision)
    result["startup"], startup_rows = startup_summary()
    rows += startup_rows
    if not args.no_end_to_end:
        # The speedrun's claim is a mean over ten seeds, so it gets ten whatever --runs says: seeds 10-19,
        # which no choice of its recipe looked at (benchmarks/NOTES.md, "The op-lean speedrun").
        configs = {"default": ([], range(42, 42 + args.runs)),
                   "fast": (["--config", str(REPO / "configs" / "fast.yaml")], range(42, 42 + args.runs)),
                   "speedrun": (["--config", str(REPO / "configs" / "speedrun.yaml")], range(10, 20))}
        for name, (config_args, seeds) in configs.items():
            bare = result["loops"] if name == "default" else None
            result[f"fit_{name}"], config_rows = end_to_end_summary(name, config_args, args, precision, seeds, bare)
            rows += config_rows
    if args.keras_python:
        result["keras"], keras_rows = keras_summary(args)
        rows += keras_rows
    result["roofline"], roofline_rows = roofline(flops, peaks, precision, result)
    rows += roofline_rows

    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{result['machine']}, {result['date']}, {precision}; medians of {args.epochs} epochs and {args.runs} runs\n")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\nwritten to {args.output}")


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")] if cpuinfo.exists() else []
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
