"""The documents a job decision reads and writes besides the record: the project's job slots, and
the change a decision returns (what to write, and what happened)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from autotune.events import TuningEvent
from autotune.jobs.lifecycle import LedgerRecord


class Slots(msgspec.Struct, frozen=True, kw_only=True):
    """The project's one `slots` document: who holds a job slot, who waits (key -> order)."""

    active: dict[str, str] = {}  # idempotency key -> since
    queued: dict[str, str] = {}  # idempotency key -> queue order (upload order)

    def free(self, max_jobs: int) -> bool:
        return len(self.active) < max_jobs

    def head(self) -> str | None:
        if not self.queued:
            return None
        return min(self.queued.items(), key=lambda item: (item[1], item[0]))[0]

    def holding(self, key: str, since: str) -> Slots:
        return Slots(
            active={**self.active, key: since},
            queued={k: v for k, v in self.queued.items() if k != key},
        )

    def waiting(self, key: str, order: str) -> Slots:
        return Slots(
            active={k: v for k, v in self.active.items() if k != key},
            queued={**self.queued, key: order},
        )

    def without(self, key: str) -> Slots:
        return Slots(
            active={k: v for k, v in self.active.items() if k != key},
            queued={k: v for k, v in self.queued.items() if k != key},
        )


class JobOutcome(enum.StrEnum):
    DUPLICATE = "duplicate"  # this delivery has nothing to do
    SKIPPED = "skipped"  # same content already tuned
    QUEUED = "queued"
    SUBMIT = "submit"  # this caller holds the claim: adopt or create the job now
    SUBMITTED = "submitted"
    FAILED = "failed"
    RELEASED = "released"  # transient failure: claim given up for a retry
    CONFLICT = "conflict"  # the record already names another job
    CHANGED = "changed"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # not a request autotune validated (or out of limits): no record, an event


@dataclass(frozen=True)
class ClaimView:
    """What the claim transaction reads: the record, the content index entry, its owner, the slots."""

    record: LedgerRecord | None
    content_owner: LedgerRecord | None
    slots: Slots


@dataclass(frozen=True)
class Change:
    """What a decision writes (None: leave as is) and what it means for the caller."""

    outcome: JobOutcome
    record: LedgerRecord | None = None
    slots: Slots | None = None
    content_owner_key: str | None = None  # set the content index entry to this key
    announced: tuple[
        TuningEvent, ...
    ] = ()  # the outbox events this change added: its caller publishes them
