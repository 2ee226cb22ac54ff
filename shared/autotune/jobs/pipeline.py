"""Everything submit, the status tick and cancel need, passed in; and the two steps every move
takes: a ledger update that knows which events it announces, and publishing them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from autotune.events import EventPublisher
from autotune.jobs.decisions import (
    CLAIM_SECONDS,
    CREATE_SETTLE_SECONDS,
    DUPLICATE_WATCH_SECONDS,
)
from autotune.jobs.documents import Change, Slots
from autotune.jobs.lifecycle import LedgerRecord
from autotune.jobs.outbox import with_announced
from autotune.jobs.ports import (
    Ledger,
    ModelCatalog,
    TuningService,
    ValidatedDatasets,
)


@dataclass
class Pipeline:
    """Everything submit and status need, passed in (adapters in production, doubles in tests)."""

    ledger: Ledger
    service: TuningService
    publisher: EventPublisher
    catalog: ModelCatalog
    project: str
    max_jobs: int = 1
    service_account: str = ""
    claim_seconds: float = CLAIM_SECONDS
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dataset_bucket: str = ""  # requests for files elsewhere are refused ("" checks nothing)
    create_settle_seconds: float = CREATE_SETTLE_SECONDS
    duplicate_watch_seconds: float = DUPLICATE_WATCH_SECONDS
    # Set: a request is acted on only if the bucket's reports and pinned copies agree with it.
    datasets: ValidatedDatasets | None = None
    reports_prefix: str = "reports/"


def update_record(
    pipeline: Pipeline, key: str, decide: Callable[[LedgerRecord, Slots], Change | None]
) -> Change | None:
    """ledger.update, the change knowing which events it announces (decided in the transaction)."""
    return pipeline.ledger.update(
        key, lambda record, slots: with_announced(decide(record, slots), record)
    )


def publish_announced(pipeline: Pipeline, change: Change | None) -> None:
    """Publish the events `change` added, then take them out of the outbox."""
    if change is None or change.record is None or not change.announced:
        return
    published = []
    for event in change.announced:
        pipeline.publisher.publish_event(event)
        published.append(event.id)
    pipeline.ledger.clear_outbox(change.record.idempotency_key, published)
