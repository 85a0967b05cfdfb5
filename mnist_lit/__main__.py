"""`python -m mnist_lit` and the `mnist-lit` command: the command line of cli.py in a process of its own."""

import sys

from mnist_lit.cli import LIGHTNING_SUBCOMMANDS, main
from mnist_lit.hardware import reuse_freed_memory


def run() -> None:
    # A setting of the whole process, so it is made here, where the process is ours, and only for
    # the commands that train or evaluate: it keeps the memory of each step for the next instead
    # of faulting it in afresh, a quarter of every training step on a CPU (hardware.py).
    if sys.argv[1:2] and sys.argv[1] in LIGHTNING_SUBCOMMANDS:
        reuse_freed_memory()
    main()


if __name__ == "__main__":
    run()
