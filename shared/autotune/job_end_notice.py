"""A person told when a tuning job ends: a Pub/Sub push subscription on tuning-events that
delivers only the job end events to a URL of theirs (pure: names, the filter, URL checks).

Google Cloud signs each push with an OIDC token (the receiver verifies it); the local Pub/Sub
emulator pushes without a token and stores the filter without applying it, so locally every
event arrives (the receiver filters on the `ce-type` attribute itself).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from autotune.events import EventType

NOTIFY_SUBSCRIPTION = "autotune-notify"
JOB_END_TYPES = (EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED)
FILTER_MAX_BYTES = 256  # Pub/Sub's limit on a subscription filter


def job_end_filter() -> str:
    """The subscription filter: a CloudEvent's type is the message attribute `ce-type`."""
    text = " OR ".join(f'attributes.ce-type = "{t.value}"' for t in JOB_END_TYPES)
    assert len(text.encode()) <= FILTER_MAX_BYTES, text
    return text


def notify_url_problem(url: str, *, local: bool) -> str | None:
    """Why the URL cannot receive pushes, or None. Google Cloud pushes only to https; the local
    emulator to http as well (a receiver on this machine)."""
    parts = urlsplit(url)
    schemes = ("http", "https") if local else ("https",)
    if parts.scheme not in schemes:
        return f"{url!r}: the push endpoint must be an {' or '.join(schemes)} URL"
    if not parts.hostname:
        return f"{url!r}: the URL names no host"
    if any(ch.isspace() for ch in url):
        return f"{url!r}: the URL contains whitespace"
    return None
