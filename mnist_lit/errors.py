"""The one exception type that mnist-lit shows to users as a plain message."""


class UserError(Exception):
    """Something the user can fix: the message says what is wrong and what to do.

    The command line prints it as one line, without a traceback, and exits non-zero.
    """
