"""LitData's loader of a streamed part (streaming.py), as Lightning's fit loop uses it across a resume.

Imported only when a set is streamed: LitData is an optional dependency.
"""

from typing import Any

import litdata


class StreamedLoader(litdata.StreamingDataLoader):
    """litdata.StreamingDataLoader whose next epoch after a resumed one starts from the beginning.

    After ``load_state_dict`` the loader continues the interrupted epoch, and leaves that mode only when
    an epoch's iteration runs to its end. Lightning stops iterating after the epoch's known number of
    batches without asking for one more, so the loader stayed in that mode and the next epoch yielded
    nothing. Its ``restore`` flag, which says so, is litdata's own attribute: touched here alone, with
    litdata's version bounded in pyproject.toml.
    """

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.resumed_epoch_started = False

    def __iter__(self) -> Any:
        if getattr(self, "resumed_epoch_started", False):
            self.restore = False  # the resumed epoch has been iterated: this is a new one
        self.resumed_epoch_started = self.restore
        yield from super().__iter__()
