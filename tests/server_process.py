"""`python -m mnist_lit serve` in a process of its own, as a user starts it; shared by the tests and scripts."""

import os
import signal
import socket
import subprocess
import sys
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
def running_server(checkpoint: Path, *options: str, log: Path | None = None) -> Iterator[str]:
    """The base URL of a server of ``checkpoint`` on 127.0.0.1, once /health says it is ready; stopped after."""
    port = free_port()
    output = open(log or os.devnull, "w")
    command = [sys.executable, "-m", "mnist_lit", "serve", "--ckpt_path", str(checkpoint), "--port", str(port), *options]
    # Its own session: stopping it reaches the HTTP and worker processes it starts.
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {' '.join(command)}" + (f"; see {log}" if log else ""))
            time.sleep(0.1)  # polling the observable condition, /health
        yield url
    finally:
        stop(process)
        output.close()


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=5).status_code == 200
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
