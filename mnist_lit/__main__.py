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


# Every command, as `python -m mnist_lit` lists them (tests/test_cli.py keeps it complete).
COMMANDS = {
    "fit": "train a network on a built-in set or a folder of pictures",
    "validate": "evaluate a checkpoint on the validation pictures",
    "test": "evaluate a checkpoint on the test pictures: accuracy, precision, recall, F1, calibration",
    "predict": "the classes of picture files",
    "export": "a checkpoint's network as ONNX or TorchScript, for other programs",
    "serve": "an HTTP API and a page to draw or upload pictures on",
    "calibrate": "fit a checkpoint's temperature and 'none of these' threshold again",
    "tune": "search for better fit options with Optuna",
}


def commands_text() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {summary}" for name, summary in COMMANDS.items()]
    return "\n".join(["usage: python -m mnist_lit COMMAND [OPTIONS]   (COMMAND --help lists its options)", "",
                      "commands:", *lines, "", "  --version   print the version"])


def run() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
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
