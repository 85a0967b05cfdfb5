"""What differs between operating systems: the cache folder, the cores a process may use, whether a process runs."""

import os
import subprocess
import sys
from pathlib import Path

from mnist_lit import hardware, sources, tune


def test_the_cache_folder_is_the_environment_variables_else_the_systems_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert sources.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(sources.CACHE_DIR_ENV)
    if sys.platform.startswith("linux"):  # where it was before platformdirs, unchanged
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert sources.cache_dir() == tmp_path / "xdg" / "mnist-lit"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert sources.cache_dir() == Path.home() / ".cache" / "mnist-lit"
    else:
        assert sources.cache_dir().name in ("mnist-lit", "Cache") and "mnist-lit" in str(sources.cache_dir())


def test_the_usable_cores_are_counted_on_systems_without_an_affinity_call(monkeypatch):
    assert 1 <= hardware.usable_cores() <= (os.cpu_count() or 1)
    for name in ("process_cpu_count", "sched_getaffinity"):  # as on macOS with Python before 3.13
        monkeypatch.delattr(os, name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert hardware.usable_cores() == 6


def test_a_process_that_ended_is_not_running_and_asking_sends_no_signal(monkeypatch):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    # On Windows os.kill ends the process whatever the signal; psutil asks each OS its own way (on POSIX
    # with signal 0, which is delivered to nobody). Any other signal would be a bug on every OS.
    sent = []
    real_kill = os.kill
    monkeypatch.setattr(os, "kill", lambda pid, signal: sent.append(signal) or real_kill(pid, signal))
    assert tune.process_exists(os.getpid())
    assert not tune.process_exists(ended.pid)
    assert set(sent) <= {0}
