"""`python -m mnist_lit` and the `mnist-lit` command: the command line of cli.py in a process of its own."""

import sys
from importlib import import_module

# Commands with their own argparse parser, started without the LightningCLI (predict, export and serve
# without importing Lightning at all: inference.py).
THIN_COMMANDS = {
    "predict": "mnist_lit.predict", "export": "mnist_lit.export", "serve": "mnist_lit.serve", "calibrate": "mnist_lit.calibrate",
    "tune": "mnist_lit.tune",
}
# Commands that import an optional dependency from their first line: the extra of pyproject.toml named after them.
NEED_EXTRAS = {"serve", "tune"}


def run() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command in THIN_COMMANDS:
        from mnist_lit.errors import run_command

        try:
            module = import_module(THIN_COMMANDS[command])
        except ModuleNotFoundError as error:
            if command not in NEED_EXTRAS:
                raise
            raise SystemExit(
                f"error: {command} needs {error.name}, which is not installed: pip install -e '.[{command}]' "
                f"in the repository (pip install 'mnist-lit[{command}]' elsewhere)."
            ) from None
        raise SystemExit(run_command(module.main, sys.argv[2:]))
    from mnist_lit.cli import LIGHTNING_SUBCOMMANDS, main
    from mnist_lit.hardware import reuse_freed_memory

    # A setting of the whole process, so it is made here, where the process is ours, and only for
    # the commands that train or evaluate: it keeps the memory of each step for the next instead
    # of faulting it in afresh, a quarter of every training step on a CPU (hardware.py).
    if command in LIGHTNING_SUBCOMMANDS:
        reuse_freed_memory()
    main()


if __name__ == "__main__":
    run()
