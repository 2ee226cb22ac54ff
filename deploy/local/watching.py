"""What `autotune watch` does between its start and its end: show each event a listener
receives, once, until a deadline, Ctrl-C, or the stack it listens to stops.

An error from the emulator is told apart by asking whether the stack still runs: a stack that is
gone ends the watch, a moment's trouble is waited out. Any error of the client library counts,
including the `RetryError` a retry that runs out raises (it is not a `GoogleAPICallError`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from google.api_core import exceptions as gexc

from autotune.events import TuningEvent
from autotune_local.clients import EventListener

# Pub/Sub delivers a copy of an event within about an ack deadline (60 s) of the first: the ids
# of this many recent events are enough to drop copies, and a watch left running for days does
# not grow without bound.
REMEMBERED_EVENT_IDS = 10_000
PAUSE_AFTER_ERROR_SECONDS = 0.5
POLL_SECONDS = 1.0


class SeenEvents:
    """The ids of the most recent events shown; `first_time` is False for a copy (same ce-id)."""

    def __init__(self, size: int = REMEMBERED_EVENT_IDS) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def first_time(self, event: TuningEvent) -> bool:
        if not event.id:
            return True  # nothing to tell copies apart by: show it
        if event.id in self._ids:
            return False
        self._ids.add(event.id)
        self._order.append(event.id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


def follow_events(
    listener: EventListener,
    *,
    show: Callable[[TuningEvent], None],
    source_running: Callable[[], bool],
    deadline: float | None = None,
) -> bool:
    """Show every event once until `deadline` (a time.monotonic() value; None: no end) or until
    the stack stops. True when it stopped (its subscription went with it), False at the deadline."""
    seen = SeenEvents()
    while deadline is None or time.monotonic() < deadline:
        try:
            received = listener.poll(timeout=POLL_SECONDS, retry=None)
        except gexc.GoogleAPIError:
            received = []
            time.sleep(PAUSE_AFTER_ERROR_SECONDS)
        for item in received:
            if seen.first_time(item.event):
                show(item.event)
        if not source_running():
            return True
    return False
