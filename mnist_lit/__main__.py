"""`python -m mnist_lit` and the `mnist-lit` command: the one dispatcher of every command.

`fit`, `validate` and `test` go to the LightningCLI (commands/cli.py); the others have their own
argparse parsers and start without it (predict, export and serve without importing Lightning at
all: models/predictor.py).
"""

import gc
import sys
from importlib import import_module
from typing import Optional

LIGHTNING = None  # the module of the commands run by the LightningCLI: commands/cli.py
# Every command, as `python -m mnist_lit` lists them, and the module whose main(argv) runs it.
COMMANDS = {
    "fit": ("train a network on a built-in set or a folder of pictures", LIGHTNING),
    "validate": ("evaluate a checkpoint on the validation pictures", LIGHTNING),
    "test": ("evaluate a checkpoint on the test pictures: accuracy, precision, recall, F1, calibration", LIGHTNING),
    "predict": ("the classes of picture files", "mnist_lit.commands.predict"),
    "export": ("a checkpoint's network as ONNX or TorchScript, for other programs", "mnist_lit.commands.export"),
    "serve": ("an HTTP API and a page to draw or upload pictures on", "mnist_lit.commands.serve"),
    "calibrate": ("fit a checkpoint's temperature and 'none of these' threshold again", "mnist_lit.commands.calibrate"),
    "tune": ("search for better fit options with Optuna", "mnist_lit.commands.tune"),
}
# Commands that import an optional dependency from their first line: the extra of pyproject.toml named after them.
NEED_EXTRAS = {"serve", "tune"}


def commands_text() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {summary}" for name, (summary, _) in COMMANDS.items()]
    return "\n".join(["usage: python -m mnist_lit COMMAND [OPTIONS]   (COMMAND --help lists its options)", "",
                      "commands:", *lines, "", "  --version   print the version"])


def main(argv: Optional[list[str]] = None) -> None:
    """Run the command ``argv`` names (default: the process's arguments); ends with SystemExit, like a process."""
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else None
    # The list of commands and the version come without importing torch or Lightning.
    if command in (None, "-h", "--help"):
        print(commands_text(), file=sys.stdout if command else sys.stderr)
        raise SystemExit(0 if command else 2)
    if command == "--version":
        from mnist_lit import __version__

        print(f"mnist-lit {__version__}")
        raise SystemExit(0)
    if command not in COMMANDS:
        from difflib import get_close_matches

        close = get_close_matches(command, COMMANDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        print(f"error: unknown command {command!r}{hint}\n\n{commands_text()}", file=sys.stderr)
        raise SystemExit(2)
    module_name = COMMANDS[command][1]
    if module_name is not LIGHTNING:
        from mnist_lit.core.errors import run_command

        try:
            module = import_module(module_name)
        except ModuleNotFoundError as error:
            if command not in NEED_EXTRAS:
                raise
            raise SystemExit(
                f"error: {command} needs {error.name}, which is not installed: pip install -e '.[{command}]' "
                f"in the repository (pip install 'mnist-lit[{command}]' elsewhere)."
            ) from None
        raise SystemExit(run_command(module.main, argv[1:]))
    from mnist_lit.commands import cli
    from mnist_lit.core.hardware import reuse_freed_memory

    # A setting of the whole process, made only for the commands that train or evaluate: it keeps the
    # memory of each step for the next instead of faulting it in afresh, a quarter of every training
    # step on a CPU (hardware.py).
    reuse_freed_memory()
    cli.main(argv)


def run() -> None:
    """The `mnist-lit` console script and `python -m mnist_lit`: main(), then the end of the process."""
    try:
        main()
    finally:
        # The process ends here and its memory goes with it. Python's last garbage collection would
        # first walk every object of torch's, Lightning's and SciPy's modules: about a second after
        # `fit` or `test` on a 2-core CPU, a quarter of one after `predict` (benchmarks/NOTES.md).
        # Only here, not in main(): a process that calls main() and goes on must still collect.
        gc.freeze()


if __name__ == "__main__":
    run()
