"""The shipped recipes (configs/*.yaml, search spaces in configs/search/), found by name from any folder.

In a clone they are the repository's configs/ folder; an installed wheel carries the same files as
the package mnist_lit.configs. `--config speedrun` (or `speedrun.yaml`, or the README's
`configs/speedrun.yaml` outside a clone) reads the shipped recipe unless a file of that name exists
where the command runs: a file that exists is always the one read.
"""

from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parents[1]  # mnist_lit/, which holds configs/ once installed


def shipped_folder() -> Optional[Path]:
    """Where the shipped recipes are: inside the installed package, else beside it in the source tree."""
    for folder in (PACKAGE / "configs", PACKAGE.parent / "configs"):
        if (folder / "default.yaml").is_file():
            return folder
    return None


def shipped(name: str, subfolder: str = "") -> Optional[Path]:
    """The shipped recipe called ``name`` (with or without .yaml, or as configs/[SUBFOLDER/]NAME.yaml) in
    ``subfolder``, if there is one."""
    folder, parts = shipped_folder(), Path(name).parts
    if parts[:1] == ("configs",):  # the path the docs write, relative to a clone's root
        parts = parts[1:]
        if subfolder and parts[:1] == (subfolder,):
            parts = parts[1:]
    if folder is None or len(parts) != 1:  # any other path with folders is never a name
        return None
    for candidate in (parts[0], f"{parts[0]}.yaml"):
        if (folder / subfolder / candidate).is_file():
            return folder / subfolder / candidate
    return None


def resolve(value: str, subfolder: str = "") -> str:
    """``value`` as given when it is a file, else the shipped recipe it names, else unchanged (the
    parser then says the file is missing)."""
    if Path(value).exists():
        return value
    found = shipped(value, subfolder)
    return str(found) if found else value


def config_options_resolved(args: list[str]) -> list[str]:
    """Command-line ``args`` with every ``--config NAME`` (``-c NAME``, ``--config=NAME``) of a shipped recipe
    replaced by its path."""
    resolved, follows_flag = [], False
    for arg in args:
        if follows_flag:
            arg = resolve(arg)
        elif arg.startswith("--config="):
            arg = "--config=" + resolve(arg.split("=", 1)[1])
        resolved.append(arg)
        follows_flag = arg in ("--config", "-c")
    return resolved
