"""The one exception type that mnist-lit shows to users as a plain message."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """Something the user can fix: the message says what is wrong and what to do.

    The command line prints it as one line, without a traceback, and exits non-zero.
    """


def run_command(command: Callable[[list[str]], int], argv: list[str]) -> int:
    """The exit status of ``command(argv)``, with a UserError printed as one `error:` line (status 1)."""
    try:
        return command(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
