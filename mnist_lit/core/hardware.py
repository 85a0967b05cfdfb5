"""What mnist-lit adapts to the machine it runs on: the precision, the memory allocator and the cores.

Both are measured choices (benchmarks/speed.py): on a 2-core AVX-512 CPU, bf16 autocast is
about 1.4x faster than fp32 for this network at the same accuracy, and reusing freed memory
removes a quarter of each training step.
"""

import ctypes
import os
import sys

import torch

# glibc's mallopt() parameter numbers, from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def fast_precision(accelerator: str = "auto") -> str:
    """Lightning's ``precision`` for this hardware: bf16 mixed where bf16 arithmetic is native, else fp32."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("cpu", "auto"):
        # Without AVX-512 BF16 the CPU emulates bf16, which is slower than fp32.
        return "bf16-mixed" if torch.cpu.get_capabilities().get("avx512_bf16", False) else "32-true"
    return "32-true"


def reuse_freed_memory() -> None:
    """Keep the memory of one training step for the next instead of returning it to the kernel.

    glibc serves each multi-megabyte activation with fresh pages and gives them back when the
    tensor is freed, so every step of this network took about 3,500 page faults (a quarter of
    its time on 2 cores). Raising the two thresholds makes glibc reuse the memory. Peak memory
    is unchanged. A no-op where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc
        return
    mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's maximum; larger blocks still use mmap
    mallopt(_M_TRIM_THRESHOLD, 2**30)


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (a container or a
    scheduler's share of the machine), else every core of the machine."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13 and later, on every OS
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
