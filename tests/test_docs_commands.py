"""Every command of README.md and docs/ runs as written: those of the code blocks, and the benchmark
scripts the text names as the source of a figure.

Each page's commands run in order, in a scratch copy of the repository root (configs/, benchmarks/)
holding what the text names: the picture files, `path/to/pictures`, the session's trained run and the
checkpoint file name the figures were measured on. A `python -m mnist_lit` or `python SCRIPT` command
runs in the test's own process (Lightning is imported once, not once a command), with the environment
and working folder a shell would give it; anything else (servers, curl, exported variables) runs in
bash. Where a command cannot run as written in a test, a rule below says what is done instead, and why: training gets options appended that shorten it; a
server is started, answers the commands after it and is stopped; what needs a GPU, several
machines or a database server has its options parsed; a benchmark (minutes of timing) has its options
checked against its --help. A command added to the docs without a rule fails the first test.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import torch
from helpers.cli import REPO, run_cli, run_script
from helpers.files import digit_picture
from helpers.picture_sets import write_split_folder
from helpers.server_process import process_answering
from mnist_lit.sources import has_files

from mnist_lit.commands.serve import check_port_free
from mnist_lit.core.errors import UserError
from mnist_lit.data.sets import DATASETS

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = {"python", "pip", "tensorboard", "curl", "torchrun", "srun", "export", "mnist-lit"}
# What `fit` and `tune` get appended: one short epoch, so that a page's commands take seconds each.
SHORT = ("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "8", "--trainer.limit_val_batches", "4")
# The data root the docs name as an example; a command naming it gets the real one.
EXAMPLE_DATA_DIR = "/path/to/data"
# The checkpoint file the docs' figures were measured on; the scratch folder holds one of that name.
MEASURED_CHECKPOINT = "checkpoints/version_0/epoch=03-val_acc=0.9904.ckpt"


@dataclass(frozen=True)
class Rule:
    """How the commands whose text matches ``pattern`` are checked; ``why`` when not run as written."""

    pattern: str
    how: str  # run | short | serve | parse | help | offline | skip
    why: str = ""


# The first rule whose pattern a command matches says how it is checked.
RULES = [
    Rule(r"python -m pytest", "skip", "the test suite itself: .ci/run runs this command"),
    Rule(r"tensorflow-cpu", "skip", "installs TensorFlow, about 500 MB"),
    Rule(r"^python benchmarks/", "help", "measurements of minutes: the script starts and takes these options"),
    Rule(r"--storage postgresql", "skip", "needs a PostgreSQL server; tune's other options run on SQLite above"),
    Rule(r"torchrun|srun|NODE_RANK=", "parse", "several machines: fit's options parsed with --print_config"),
    Rule(r"--trainer\.strategy ddp --trainer\.devices 2 --trainer\.accelerator cpu$", "parse",
         "two processes on the CPU: tests/test_distributed.py trains and tests with exactly these options"),
    Rule(r"--trainer\.accelerator gpu", "gpu", "runs shortened with a GPU, parsed with --print_config without"),
    Rule(r"^export ", "run"),
    Rule(r"mnist_lit serve|^tensorboard ", "serve", "started; it answers the page's next commands until another starts"),
    Rule(r"^pip install -e '\.\[\w+\]'$", "skip", "the test command installs every extra (checked below)"),
    Rule(r"pretrained=True", "offline", "timm's weights cannot be downloaded here: random ones, saved to the same file"),
    Rule(r"mnist_lit fit --print_config", "run"),
    Rule(r"mnist_lit (fit|tune)", "short", "shortened to one epoch of 8 batches (and one trial)"),
    Rule(r"^(python -m mnist_lit (test|validate|predict|export|calibrate)|curl)", "run"),
]


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced block and each block indented by four spaces or more after a blank line."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append(lines[i + 1 : end])
            i = end + 1
        elif (indent := re.match(r" {4,}(?=\S)", lines[i])) and (i == 0 or not lines[i - 1].strip()):
            width, end = len(indent.group()), i
            while end < len(lines) and (lines[end].startswith(" " * width) or not lines[end].strip()):
                end += 1
            blocks.append([line[width:] for line in lines[i:end]])
            i = end
        else:
            i += 1
    return blocks


def block_commands(block: list[str]) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments dropped; only the `$ ` lines
    of a block that shows a terminal; lines that start with something else (output, files) left out."""
    joined: list[str] = []
    for line in block:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1].rstrip() + " " + line.strip()
        else:
            joined.append(line)
    if any(line.startswith("$ ") for line in joined):
        joined = [line[2:] for line in joined if line.startswith("$ ")]
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in joined]
    return [c for c in commands if c and (c.split()[0] in PROGRAMS or re.match(r"[A-Z_]+=\S", c))]


def page_commands(page: Path) -> list[str]:
    """The commands of the page's code blocks, then those of its benchmark scripts named in the text."""
    text = page.read_text()
    scripts = [" ".join(span.split()) for span in re.findall(r"`(python\s+benchmarks/[^`]+)`", text)]
    blocks = [command for block in code_blocks(text) for command in block_commands(block)]
    return blocks + [command for command in dict.fromkeys(scripts) if command not in blocks]


def rules_matching(command: str) -> list[Rule]:
    return [rule for rule in RULES if re.search(rule.pattern, installed_part_dropped(command))]


def installed_part_dropped(command: str) -> str:
    """``pip install -e '.[serve]' && X`` -> ``X``: the test command installs every extra (checked below)."""
    return re.sub(r"^pip install -e '?\.(\[\w+\])?'? && ", "", command)


def test_every_command_in_the_docs_has_a_rule_and_every_rule_a_command():
    commands = [c for page in PAGES for c in page_commands(page)]
    assert len(commands) > 40  # the extraction found the docs' commands
    unmatched = [c for c in commands if not rules_matching(c)]
    assert not unmatched, f"commands in the docs that no rule in {Path(__file__).name} covers: {unmatched}"
    unused = [r.pattern for r in RULES if not any(r in rules_matching(c) for c in commands)]
    assert not unused, f"rules for commands the docs no longer hold: {unused}"


def test_the_extras_the_docs_install_come_with_the_test_command():
    """So that dropping ``pip install -e '.[extra]' &&`` from a command changes nothing in the tests."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    name = lambda requirement: re.match(r"[\w.-]+", requirement).group()  # noqa: E731
    dev_names = {name(requirement) for requirement in extras["dev"]}
    dev_extras = {e for r in extras["dev"] if r.startswith("mnist-lit[") for e in r[10:-1].split(",")}
    named = {m for page in PAGES for m in re.findall(r"pip install -e '\.\[(\w+)\]'", page.read_text())}
    assert named >= {"dev", "serve", "tune"}
    for extra in named - {"dev"}:
        assert extra in extras, f"the docs install .[{extra}], which pyproject.toml lacks"
        assert extra in dev_extras or {name(r) for r in extras[extra]} <= dev_names, f".[dev] lacks .[{extra}]"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, trained_run) -> Path:
    """A scratch repository root with the files the docs name and the session's trained run in it."""
    root = tmp_path_factory.mktemp("docs_commands")
    # Copies: what a script writes beside itself stays in the scratch folder.
    for folder in ("configs", "benchmarks", "tests"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.png", "*.ckpt"))
    for name in ("photo.jpg", "new_photo.jpg", "seven.png", "one.png", "scans/a.png", "scans/b.jpg",
                 "more/c.png", "more/d.png", "digits/e.png", "digits/f.png"):
        (root / name).parent.mkdir(exist_ok=True)
        digit_picture(root / name)
    write_split_folder(root / "path" / "to" / "pictures", train=20, test=6)
    trained_run.copy_to(root)
    shutil.copy(root / "checkpoints" / "version_0" / "last.ckpt", root / MEASURED_CHECKPOINT)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_command_of_the_page_runs_as_written(page, finished_run, real_mnist, tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(finished_run, root)
    # `python` in the docs is this interpreter; the data root is the one the other tests read.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "MNIST_LIT_DATA_DIR": str(real_mnist.resolve())}
    # What the checks that change nothing printed, by the command line they ran: each runs once a page.
    answered: dict[str, subprocess.CompletedProcess] = {}
    # A server keeps running for the commands after it, as for a reader, until the next one starts.
    with ExitStack() as server:
        for command in page_commands(page):
            shell = installed_part_dropped(command).replace(EXAMPLE_DATA_DIR, str(real_mnist.resolve()))
            how = rules_matching(command)[0].how  # the first rule that matches
            if "fashion_mnist" in shell and not has_files(real_mnist, DATASETS["fashion_mnist"]):
                how = "skip"  # as the other end-to-end tests do without its files
            if how == "serve":
                server.close()
                # TensorBoard's page on its default port, or the server's /health.
                tensorboard = shell.startswith("tensorboard")
                port = 6006 if tensorboard else int(option_value(shell, "--port", "8000"))
                try:  # another program answering on the port would be asked in the server's place
                    check_port_free("127.0.0.1", port)
                except UserError as error:
                    pytest.fail(f"the docs' commands use port {port}: {error}")
                url = f"http://localhost:{port}/" if tensorboard else f"http://127.0.0.1:{port}/health"
                server.enter_context(process_answering(["bash", "-c", f"exec {shell}"], url, cwd=root, env=env))
            else:
                run_command(command, shell, how, root, env, answered)


def run_command(command: str, shell: str, how: str, root: Path, env: dict, answered: dict) -> None:
    """``shell`` (``command`` of the docs, ready to run) checked as its rule says."""
    if how == "skip":
        return
    if how == "help":
        script = " ".join(shell.split()[:2])  # python benchmarks/NAME.py
        out = check_once(f"{script} --help", root, env, answered).stdout
        for option in re.findall(r"--\w+", shell):
            assert option in out, f"`{command}`: {option} is not among the script's options"
    elif how == "parse" or too_few_gpus(how, shell):
        check_once("python " + shell[shell.index("-m mnist_lit") :] + " --print_config", root, env, answered)
    elif how in ("short", "gpu"):
        shortened = [part + " " + " ".join(SHORT + (("--trials", "1") if "mnist_lit tune" in part else ()))
                     if re.search(r"mnist_lit (fit|tune)", part) else part for part in shell.split(" && ")]
        check(" && ".join(shortened), root, env)
    elif how == "offline":
        check(shell.replace("pretrained=True", "pretrained=False"), root, env)
    elif shell.startswith("export "):
        out = check(f"{shell} && env -0", root, env).stdout
        env.update(line.split("=", 1) for line in out.split("\0") if "=" in line)
    else:
        result = check(shell, root, env)
        if shell.startswith("curl"):
            assert "answer" in json.loads(result.stdout), f"`{command}` answered {result.stdout[:300]}"


def too_few_gpus(how: str, command: str) -> bool:
    return how == "gpu" and torch.cuda.device_count() < int(option_value(command, "--trainer.devices", "1"))


def option_value(command: str, name: str, default: str) -> str:
    found = re.search(rf"{name} (\S+)", command)
    return found.group(1) if found else default


def check(shell: str, root: Path, env: dict) -> subprocess.CompletedProcess:
    """``shell`` run in ``root``, in this process where it can be (``in_process``), else by bash; it must succeed."""
    parts = [in_process(part) for part in shell.split(" && ")]
    if not all(parts):
        result = subprocess.run(["bash", "-c", shell], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    for variables, argv in parts if all(parts) else []:  # each part of an && chain while they succeed
        if argv[:2] == ["-m", "mnist_lit"]:
            result = run_cli(root, Path(env["MNIST_LIT_DATA_DIR"]), *argv[2:], check=False, env={**env, **variables})
        else:
            result = run_script(root / argv[0], *argv[1:], cwd=root, env={**env, **variables})
        if result.returncode != 0:
            break
    assert result.returncode == 0, f"`{shell}` failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


def in_process(command: str) -> Optional[tuple[dict[str, str], list[str]]]:
    """``VAR=value ... python -m mnist_lit ARGS`` or ``python SCRIPT.py ARGS`` as (variables, argv after
    `python`), when the shell would pass the words on unchanged (nothing to expand or redirect) and the
    command starts no processes of its own; else None."""
    if re.search(r"[$`|;<>(){}\\]", command):
        return None
    # Lightning starts DDP's other processes by running the command line again: that of a real process.
    if re.search(r"--trainer\.(strategy ddp|devices [2-9]|num_nodes [2-9])", command) and "--print_config" not in command:
        return None
    words = shlex.split(command)
    variables = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        name, value = words.pop(0).split("=", 1)
        variables[name] = value
    unquoted_glob = any(re.search(r"[*?\[]", word) for word in command.split() if word[0] not in "'\"")
    program = words[1:3] == ["-m", "mnist_lit"] or (len(words) > 1 and words[1].endswith(".py"))
    if words[:1] != ["python"] or not program or unquoted_glob:
        return None
    return variables, words[1:]


def check_once(shell: str, root: Path, env: dict, answered: dict) -> subprocess.CompletedProcess:
    """``check``, unless the same line already ran on this page (for lines that change nothing)."""
    if shell not in answered:
        answered[shell] = check(shell, root, env)
    return answered[shell]
