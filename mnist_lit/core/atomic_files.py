"""Writing output files so that a crash or Ctrl-C never leaves a half-written one behind."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mnist_lit.core.errors import UserError


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it becomes ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:  # named after the file the user asked for, not the temporary one
        raise OSError(error.errno, error.strerror, str(path)) from None
    os.close(handle)
    try:
        yield Path(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it the usual permissions
        os.replace(temporary, path)  # atomic on POSIX and Windows within one file system
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def cannot_write(error: OSError, options: str) -> UserError:
    """A failed write as one line that names the command's own options for choosing the place."""
    return UserError(
        f"cannot write {error.filename or 'an output file'} ({error.strerror or error}); "
        f"choose a writable place with {options}, or free some space."
    )
