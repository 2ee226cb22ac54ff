"""The outbox decisions: which events a change announces, and the leftovers of a crashed mover.

Every move writes its events into the record's outbox in its own transaction (autotune.jobs
explains the steps). These two pure functions decide, inside the ledger's transactions, what a
caller publishes: the events its own change added (`with_announced`), and, for the status tick,
the events a mover that died left behind, under a lease so two overlapping ticks do not both
publish them (`lease_leftovers`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import overload

import msgspec

from autotune.events import TuningEvent
from autotune.jobs.documents import Change, JobOutcome, Slots
from autotune.jobs.lifecycle import LedgerRecord, parse_timestamp, timestamp

OUTBOX_GRACE_SECONDS = 30.0  # events still unpublished after this were left by a crash


@overload
def with_announced(change: Change, before: LedgerRecord | None) -> Change: ...


@overload
def with_announced(change: Change | None, before: LedgerRecord | None) -> Change | None: ...


def with_announced(change: Change | None, before: LedgerRecord | None) -> Change | None:
    """`change`, told which events of its record's outbox it added (those not in `before`'s)."""
    if change is None or change.record is None or change.announced:
        return change
    earlier = {event.id for event in before.outbox} if before is not None else set()
    added = tuple(event for event in change.record.outbox if event.id not in earlier)
    return replace(change, announced=added) if added else change


def lease_leftovers(
    record: LedgerRecord,
    slots: Slots,
    *,
    now: datetime,
    grace_seconds: float = OUTBOX_GRACE_SECONDS,
) -> Change | None:
    """The outbox events older than the grace (their mover died before publishing them), leased to
    this tick for as long again; None when there are none or another tick holds the lease."""
    if record.outbox_lease_until is not None and parse_timestamp(record.outbox_lease_until) > now:
        return None
    cutoff = now - timedelta(seconds=grace_seconds)
    leftovers = tuple(event for event in record.outbox if _event_time(event) <= cutoff)
    if not leftovers:
        return None
    leased = msgspec.structs.replace(
        record, outbox_lease_until=timestamp(now + timedelta(seconds=grace_seconds))
    )
    return Change(JobOutcome.CHANGED, record=leased, announced=leftovers)


def _event_time(event: TuningEvent) -> datetime:
    try:
        return datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # no readable time: old enough
