"""`python -m mnist_lit ARGS` as a user types it: in this process where the process boundary is not
what a test checks (Lightning is imported once per session instead of once per command), or in a
process of its own where exit codes, signals or the real stderr are."""

import io
import logging
import os
import queue
import runpy
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Optional

import mnist_lit.__main__ as entry

REPO = Path(__file__).resolve().parents[2]
# Loggers that write to a stream they took when Lightning was imported, not to sys.stderr now.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
# The warnings a fresh interpreter hides (Python's default filters, outside __main__).
PYTHON_IGNORES = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_cli(cwd: Path, data_dir: Path, *args: str, check: bool = True, env: Optional[dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
    """``python -m mnist_lit ARGS`` run in this process in ``cwd``, with the data root in $MNIST_LIT_DATA_DIR
    and ``env`` added to the environment: its exit status, stdout and stderr as a process of its own would
    give them. It must succeed unless ``check`` is false."""
    variables = {**(env or {}), "MNIST_LIT_DATA_DIR": str(data_dir.resolve())}
    result = run_in_process(entry.run, ["python -m mnist_lit", *args], cwd, variables)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def run_script(script: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` run in this process in ``cwd``, as ``run_in_process`` runs a program."""
    return run_in_process(lambda: runpy.run_path(str(script), run_name="__main__"), [str(script), *args], cwd, env)


def run_in_process(main: Callable[[], object], argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``main()`` run as the program ``argv`` in ``cwd``, with ``env`` added to the environment: its exit
    status, stdout and stderr (Lightning's log lines and warnings included) as a process of its own would give
    them. The working directory, environment, argv and warning filters are put back as they were after."""
    cwd.mkdir(parents=True, exist_ok=True)
    stdout, stderr = io.StringIO(), io.StringIO()
    with own_process_state(cwd, env, argv):
        with redirect_stdout(stdout), redirect_stderr(stderr), lightning_logs_to(stderr), warnings_printed():
            try:
                main()
                status = 0
            except SystemExit as exit:  # how every command ends: a status, or a message for stderr
                status = exit_status(exit, stderr)
    return subprocess.CompletedProcess(argv, status, stdout.getvalue(), stderr.getvalue())


def run_cli_process(cwd: Path, data_dir: Path, *args: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """``python -m mnist_lit ARGS`` in its own process in ``cwd``: for what only a process shows (its exit
    status as the shell sees it, signals, start-up). It must succeed unless ``check`` is false."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MNIST_LIT_DATA_DIR": str(data_dir.resolve()), **popen.pop("env", {})}
    result = subprocess.run([sys.executable, "-m", "mnist_lit", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900, **popen)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def exit_status(exit: SystemExit, stderr: io.StringIO) -> int:
    """What the interpreter makes of a SystemExit: None is 0, a number itself, a message goes to stderr as 1."""
    if exit.code is None or isinstance(exit.code, int):
        return exit.code or 0
    print(exit.code, file=stderr)
    return 1


@contextmanager
def own_process_state(cwd: Path, env: dict[str, str], argv: list[str]) -> Iterator[None]:
    """The working directory, environment variables and argv of a command, put back as they were after."""
    saved_cwd, saved_env, saved_argv = os.getcwd(), dict(os.environ), sys.argv
    os.chdir(cwd)
    os.environ.update(env)
    sys.argv = argv
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv


@contextmanager
def lightning_logs_to(stream: io.StringIO) -> Iterator[None]:
    """Lightning's log lines (restoring a checkpoint, the devices found) into ``stream``, as into a process's
    stderr; the levels a command sets (tune quiets Lightning) are put back after it, as a new process starts."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    handlers = [h for logger in loggers for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    previous = [handler.setStream(stream) for handler in handlers]
    try:
        with lightning_levels_kept():
            yield
    finally:
        for handler, old in zip(handlers, previous):
            handler.setStream(old)


@contextmanager
def lightning_levels_kept() -> Iterator[None]:
    """Lightning's log levels put back as they were after the block: `tune` quiets Lightning for good."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def warnings_printed() -> Iterator[None]:
    """Warnings printed to stderr, each time, as a fresh process prints them (pytest would collect them)."""
    with warnings.catch_warnings():  # the command's filters are undone after it; seen-once records are reset
        warnings.resetwarnings()
        for category in PYTHON_IGNORES:  # the filters a fresh interpreter starts with
            warnings.simplefilter("ignore", category)
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        yield


class Output:
    """What a process prints, read on a thread, so that a test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, prefix: Optional[str], timeout: float = 300) -> str:
        """The text up to the first line starting with ``prefix`` (None: up to the end of the output)."""
        seen, deadline = [], time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                assert prefix is None, f"the output ended before a line starting with {prefix!r}:\n" + "".join(seen[-30:])
                return "".join(seen)
            seen.append(line)
            if prefix is not None and line.startswith(prefix):
                return "".join(seen)
