"""Notifications on tuning-events: CloudEvents in the Pub/Sub binding, binary mode.

Message data is the JSON `EventPayload`; the attributes are the CloudEvent context
(`ce-specversion`, `ce-id`, `ce-source`, `ce-type`, `ce-time`, `ce-subject`,
`ce-datacontenttype`). `ce-id` is derived from what the event says, not drawn at random, so
a step that runs twice (Pub/Sub redelivers) publishes the same id and a subscriber can drop
the copy. No dataset content ever goes into a payload: only names, counts and states.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import Protocol

import msgspec

SPEC_VERSION = "1.0"
SOURCE = "//autotune/pipeline"
DATA_CONTENT_TYPE = "application/json"


class EventType(enum.StrEnum):
    DATASET_ACCEPTED = "autotune.dataset.v1.accepted"
    DATASET_REJECTED = "autotune.dataset.v1.rejected"
    JOB_QUEUED = "autotune.job.v1.queued"
    JOB_SUBMITTED = "autotune.job.v1.submitted"
    JOB_RUNNING = "autotune.job.v1.running"
    JOB_SUCCEEDED = "autotune.job.v1.succeeded"
    JOB_FAILED = "autotune.job.v1.failed"
    JOB_CANCELLED = "autotune.job.v1.cancelled"
    # A re-upload of bytes and settings already tuned: no job, and the reason says which tuning it repeats.
    JOB_SKIPPED = "autotune.job.v1.skipped"
    # A second tuning job carrying the dataset's label (an answer lost, then a list that lagged)
    # was found and cancelled; job_name is that second job, the dataset keeps its first.
    JOB_DUPLICATE_CANCELLED = "autotune.job.v1.duplicate_cancelled"
    # A tuning request submit would not act on (autotune did not validate exactly this, or its
    # settings are out of limits): no job, no ledger record; `error` says why.
    JOB_REFUSED = "autotune.job.v1.refused"


class EventPayload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The JSON body of every tuning-events message. Fields that do not apply are left out."""

    dataset_uri: str  # gs://bucket/object of the training file
    generation: str
    idempotency_key: str | None = None
    report_uri: str | None = None
    valid: bool | None = None
    error_count: int | None = None
    warning_count: int | None = None
    counts: dict[str, int] | None = None  # error code -> occurrences
    model: str | None = None
    job_name: str | None = None  # projects/P/locations/L/tuningJobs/ID
    state: str | None = None  # ledger state, e.g. QUEUED, RUNNING, SUCCEEDED
    tuned_model: str | None = None
    endpoint: str | None = None
    error: str | None = None
    reason: str | None = None  # why the step went this way (queued: quota full; forced re-tune)


class TuningEvent(msgspec.Struct, frozen=True, kw_only=True):
    type: EventType
    payload: EventPayload
    time: str = ""
    id: str = ""

    @property
    def subject(self) -> str:
        return self.payload.dataset_uri


class EventPublisher(Protocol):
    """Where every stage publishes its events (tuning-events); returns once Pub/Sub has the event."""

    def publish_event(self, event: TuningEvent) -> object: ...


def make_event(
    event_type: EventType,
    payload: EventPayload,
    *,
    discriminator: str = "",
    now: datetime | None = None,
) -> TuningEvent:
    """An event with a stable id: the same type, dataset version and discriminator give the same id.

    `discriminator` tells apart events of one type that are really different (a forced second
    job on the same dataset version, say); leave it empty otherwise.
    """
    # The dataset's key too: two manifests on one training file version are two datasets, and a
    # subscriber dropping repeats by ce-id must not lose either one's events.
    material = "|".join(
        [
            event_type.value,
            payload.dataset_uri,
            payload.generation,
            payload.idempotency_key or "",
            payload.job_name or "",
            discriminator,
        ]
    )
    event_id = hashlib.sha256(material.encode()).hexdigest()[:32]
    stamp = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return TuningEvent(type=event_type, payload=payload, time=stamp, id=event_id)


def to_pubsub_message(event: TuningEvent) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) for `PublisherClient.publish(topic, data, **attributes)`."""
    attributes = {
        "ce-specversion": SPEC_VERSION,
        "ce-id": event.id,
        "ce-source": SOURCE,
        "ce-type": event.type.value,
        "ce-time": event.time,
        "ce-subject": event.subject,
        "ce-datacontenttype": DATA_CONTENT_TYPE,
    }
    return msgspec.json.encode(event.payload), attributes


def from_pubsub_message(data: bytes, attributes: dict[str, str]) -> TuningEvent:
    """The reverse of `to_pubsub_message`, for subscribers (`autotune watch`, tests)."""
    payload = msgspec.json.decode(data, type=EventPayload)
    return TuningEvent(
        type=EventType(attributes["ce-type"]),
        payload=payload,
        time=attributes.get("ce-time", ""),
        id=attributes.get("ce-id", ""),
    )


def payload_json_schema() -> dict:
    return msgspec.json.schema(EventPayload)
