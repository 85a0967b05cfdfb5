"""What a malicious checkpoint would run: each function leaves a file where $PAYLOAD_MARKER says.

The untrusted-checkpoint tests name these functions in crafted checkpoints (tests/ on PYTHONPATH)
and check that the file never appears.
"""

import os
from pathlib import Path


def ran(*args, **kwargs) -> None:
    Path(os.environ["PAYLOAD_MARKER"]).write_text("the checkpoint ran code\n")


class Evil:
    """Pickled, it rebuilds itself by calling ``ran``."""

    def __reduce__(self):
        return (ran, ())
