"""tuning-events as `autotune watch` prints them: one line per event cut to the terminal's
width, or one JSON object per line (the CloudEvent in structured form), and the `--type`
filter. Pure: no cloud library, no terminal."""

from __future__ import annotations

import json
from collections.abc import Iterable

from autotune.events import EventType, TuningEvent, to_pubsub_message
from autotune.terminal_text import terminal_text

ELLIPSIS = "…"


def wanted_types(names: Iterable[str]) -> frozenset[EventType]:
    """The event types `--type` names: a full type (autotune.job.v1.succeeded) or its last part
    (succeeded); none named means every type. Raises ValueError naming what is unknown."""
    by_short = {t.value.rsplit(".", 1)[1]: t for t in EventType}
    chosen, unknown = set(), []
    for name in names:
        name = name.strip()
        found = next((t for t in EventType if t.value == name), None) or by_short.get(name)
        if found is None:
            unknown.append(name)
        else:
            chosen.add(found)
    if unknown:
        known = ", ".join(sorted(by_short))
        raise ValueError(
            f"unknown event type {', '.join(map(repr, unknown))}; known: {known} (or the full autotune.*.v1.* type)"
        )
    return frozenset(chosen or EventType)


def event_document(event: TuningEvent) -> dict:
    """The CloudEvent in structured form: its ce-* attributes without the prefix, and "data"."""
    data, attributes = to_pubsub_message(event)
    doc = {name.removeprefix("ce-"): value for name, value in attributes.items()}
    doc["data"] = json.loads(data)
    return doc


def json_line(event: TuningEvent) -> str:
    # ensure_ascii: every control character an uploader put in a name arrives as \\uXXXX.
    return json.dumps(event_document(event), ensure_ascii=True, separators=(",", ":"))


def fitted_line(text: str, width: int) -> str:
    """`text` on one line, control characters escaped, cut to `width` with an ellipsis."""
    line = terminal_text(text, newlines=False)
    if width > 0 and len(line) > width:
        return line[: max(width - 1, 0)] + ELLIPSIS
    return line
