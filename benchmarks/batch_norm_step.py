"""What normalizing with the real pictures' statistics (mnist_lit/models/batch_norm.py) costs a training step.

    python benchmarks/batch_norm_step.py

One training step of batchnorm_cnn (channels last, bf16 autocast on the CPU, Adam) on 128 pictures
and 32 outliers, plain and within ``real_statistics``, alternating; the median of six rounds of five
steps each, and their ratio. Random pixels: only the time is measured.
"""

import platform
import statistics
import time
from contextlib import nullcontext

import torch

from mnist_lit.models.batch_norm import real_statistics
from mnist_lit.models.networks import build_network

REAL, OUTLIERS, ROUNDS, STEPS = 128, 32, 6, 5


def main() -> None:
    torch.manual_seed(0)
    net = build_network("batchnorm_cnn", 10, 1, 28).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(net.parameters())
    pictures = torch.randn(REAL + OUTLIERS, 1, 28, 28).to(memory_format=torch.channels_last)

    def step(real_only: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16), real_statistics(net, REAL) if real_only else nullcontext():
            logits = net(pictures)
        logits.float().sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    for real_only in (False, True):  # warm-up
        step(real_only)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(ROUNDS):
        for real_only in (False, True):
            start = time.perf_counter()
            for _ in range(STEPS):
                step(real_only)
            times[real_only].append((time.perf_counter() - start) / STEPS * 1000)
    plain, real = statistics.median(times[False]), statistics.median(times[True])
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads: "
          f"{plain:.1f} ms per step plain, {real:.1f} ms with the real pictures' statistics ({real / plain:.2f}x)")


if __name__ == "__main__":
    main()
