"""Pictures per second of timm networks at 224 px on this machine: training steps and predictions.

    python benchmarks/timm_speed.py [--models resnet18 mobilenetv3_large_100] [--batch_size 32]

Each network as `fit` builds it for a colour folder set of 5 classes at 224x224 (``--model.net
timm/NAME``): channels last, in the precision `fit` picks for this CPU (bf16 autocast where bf16 is
native, else fp32), Adam; a training step is forward, backward and the optimizer's step on a batch.
Predicting is `predict`'s forward pass (fp32, inference mode). The median of five timed rounds of
three batches each, after one warm-up round. Random pixels: only the time is measured.
"""

import argparse
import platform
import statistics
import time
from contextlib import nullcontext

import torch

from mnist_lit.core.hardware import fast_precision
from mnist_lit.models.networks import build_network

SIDE, CLASSES, ROUNDS, BATCHES = 224, 5, 5, 3


def per_second(run, pictures: int) -> float:
    """Pictures per second of ``run`` (one batch of ``pictures``): the median of the timed rounds."""
    run()  # warm-up: oneDNN picks its kernels
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(BATCHES):
            run()
        rounds.append(BATCHES * pictures / (time.perf_counter() - start))
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv3_large_100"])
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    precision = fast_precision("cpu")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16-mixed" else nullcontext
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"training in {precision}, {SIDE}x{SIDE} colour pictures, batches of {args.batch_size}")
    print("| network | parameters | training pictures/s | predicting pictures/s |")
    print("|---|---:|---:|---:|")
    torch.manual_seed(0)
    pictures = torch.randn(args.batch_size, 3, SIDE, SIDE).to(memory_format=torch.channels_last)
    labels = torch.randint(CLASSES, (args.batch_size,))
    for name in args.models:
        net = build_network(f"timm/{name}", CLASSES, 3, SIDE).to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(net.parameters())

        def train() -> None:
            with autocast():
                loss = torch.nn.functional.cross_entropy(net(pictures).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        def predict() -> None:
            with torch.inference_mode():
                net(pictures)

        net.train()
        training = per_second(train, args.batch_size)
        net.eval()
        predicting = per_second(predict, args.batch_size)
        parameters = sum(p.numel() for p in net.parameters())
        print(f"| timm/{name} | {parameters / 1e6:.1f} M | {training:.1f} | {predicting:.1f} |")


if __name__ == "__main__":
    main()
