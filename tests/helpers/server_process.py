"""`python -m mnist_lit serve` in a process of its own, as a user starts it; shared by the tests and scripts."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

START_TIMEOUT_S = 120


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process_answering(command: list[str], ready_url: str, **popen) -> Iterator[subprocess.Popen]:
    """``command`` in a process group of its own, once ``ready_url`` answers 200; stopped after."""
    # Its own session: a stop reaches every process it starts (a server's workers), and they can be found.
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a pipe nobody reads would block the process
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # A shell starts background jobs with Ctrl+C ignored, and children inherit that; stop() sends it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(ready_url):
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                log.seek(0)
                raise RuntimeError(f"did not start: {' '.join(command)}\n{log.read()[-3000:]}")
            time.sleep(0.1)  # polling the observable condition, the URL's answer
        process.output = log  # what the process has printed, for the tests that read it
        yield process
    finally:
        stop(process)
        log.close()


@contextmanager
def server_process(checkpoint: Path, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A server of ``checkpoint`` on 127.0.0.1 and its base URL, once /health says it is ready; stopped after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mnist_lit", "serve", "--ckpt_path", str(checkpoint), "--port", str(port), *options]
    with process_answering(command, f"{url}/health") as process:
        yield process, url


@contextmanager
def running_server(checkpoint: Path, *options: str) -> Iterator[str]:
    """The base URL of a server of ``checkpoint`` on 127.0.0.1, once it is ready; stopped after."""
    with server_process(checkpoint, *options) as (_, url):
        yield url


def session_processes(session: int) -> list[int]:
    """The processes of a session: a server started above and every process it started."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(pid))
    return found


def healthy(url: str) -> bool:
    return answers(f"{url}/health")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def stop(process: subprocess.Popen) -> None:
    """Ctrl+C, as a user stops it; the whole process group if it does not exit."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind by an unclean exit
    except ProcessLookupError:
        pass
