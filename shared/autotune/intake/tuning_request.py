"""The tuning request an accepted upload publishes, built from its report and settings, and the
check that the files it names are stored as plain bytes. Apart from autotune.intake.upload because
it is the contract with the job stage (autotune.jobs.request), not a step of the decision."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from autotune.intake.objects import StoredObject
from autotune.jobs.request import DatasetRef, TuningRequest, content_key, idempotency_key
from autotune.settings import TuningSettings, is_forced

if TYPE_CHECKING:
    from autotune.validation import ValidationReport


def content_encoded(*objects: StoredObject | None) -> str | None:
    for obj in objects:
        if obj is not None and obj.content_encoding and obj.content_encoding.lower() != "identity":
            return (
                f"{obj.uri} is stored with Content-Encoding: {obj.content_encoding[:64]}; upload it uncompressed "
                "(limits and checksums apply to the bytes as stored)"
            )
    return None


def build_request(
    uploaded: StoredObject,
    training: StoredObject,
    validation: StoredObject | None,
    settings: TuningSettings,
    report: ValidationReport,
    report_uri: str,
    now: datetime,
    *,
    pinned_training: StoredObject | None = None,
    pinned_validation: StoredObject | None = None,
) -> TuningRequest:
    train_file = report.files["train"]
    validation_file = report.files.get("validation") if validation else None
    content = content_key(
        train_file.sha256, validation_file.sha256 if validation_file else None, settings
    )
    return TuningRequest(
        idempotency_key=idempotency_key(
            training.bucket, training.name, training.generation, content
        ),
        content_key=content,
        training=DatasetRef(
            bucket=training.bucket,
            object=training.name,
            generation=training.generation,
            sha256=train_file.sha256,
            size=train_file.size,
            **_pinned_fields(pinned_training),
        ),
        validation=DatasetRef(
            bucket=validation.bucket,
            object=validation.name,
            generation=validation.generation,
            sha256=validation_file.sha256,
            size=validation_file.size,
            **_pinned_fields(pinned_validation),
        )
        if validation and validation_file
        else None,
        trigger_object=uploaded.name,
        trigger_generation=uploaded.generation,
        settings=settings,
        report_uri=report_uri,
        force=is_forced(uploaded.metadata),
        example_count=report.example_count,
        estimated_billable_tokens=report.estimated_billable_tokens,
        requested_at=now.isoformat().replace("+00:00", "Z"),
    )


def _pinned_fields(pinned: StoredObject | None) -> dict[str, str]:
    return (
        {}
        if pinned is None
        else {"pinned_object": pinned.name, "pinned_generation": pinned.generation}
    )
