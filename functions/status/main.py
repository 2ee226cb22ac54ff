"""status: on each tick of status-ticks, poll the active tuning jobs and fill free job slots.

Vertex AI announces no job end, so Cloud Scheduler (locally, the stack's ticker) publishes a
tick and this function records every job state change, publishes each job event once, takes
over submissions whose submitter died, and submits the oldest queued dataset when a slot frees.
At most once every `reconcile_every_seconds` (across instances) it also takes in again uploads
whose storage notification or tuning request was lost (autotune.intake.reconciliation).
A tick is always acknowledged: the ledger holds all state, so the next tick redoes whatever
this one could not, and a stale tick is not worth a retry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import cast

import functions_framework

from autotune import structured_log
from autotune.config import PipelineConfig
from autotune.function_wiring import Wired
from autotune.intake.decisions import UploadDecision
from autotune.intake.ports import IntakeDeps
from autotune.intake.reconciliation import (
    BucketLister,
    LostUpload,
    ReconcileLedger,
    reconcile_if_due,
)
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.tick import status_tick


def _connect_pipeline() -> Pipeline:
    from autotune.adapters.jobs import connect_pipeline

    return connect_pipeline(_config())


def _connect_intake() -> tuple[IntakeDeps, BucketLister]:
    # Only on the first reconciliation pass: most ticks never need storage clients.
    from autotune.adapters.intake import connect_intake

    return connect_intake(_config())


_config: Wired[PipelineConfig] = Wired(PipelineConfig.from_env)
_pipeline: Wired[Pipeline] = Wired(_connect_pipeline)
_intake: Wired[tuple[IntakeDeps, BucketLister]] = Wired(_connect_intake)


def configure(
    *,
    config: Callable[[], PipelineConfig] | None = None,
    pipeline: Callable[[], Pipeline] | None = None,
    intake: Callable[[], tuple[IntakeDeps, BucketLister]] | None = None,
) -> None:
    """Serve with these instead of what the environment builds (each on first use): the
    configuration, the job pipeline, and the reconciliation's intake (its IntakeDeps and the
    bucket it lists)."""
    if config is not None:
        _config.build_with(config)
    if pipeline is not None:
        _pipeline.build_with(pipeline)
    if intake is not None:
        _intake.build_with(intake)


@functions_framework.cloud_event
def status(cloud_event) -> None:
    try:
        summary = status_tick(_pipeline())
    except Exception as exc:
        structured_log.error(
            "status tick failed; the next tick will retry",
            error=f"{type(exc).__name__}: {exc}",
            event_id=cloud_event["id"],
        )
        return
    if (
        summary.changed
        or summary.promoted
        or summary.taken_over
        or summary.published
        or summary.errors
    ):
        structured_log.info(
            "status tick", event_id=cloud_event["id"], **dataclasses.asdict(summary)
        )
    pipeline = _pipeline()
    try:
        # The pipeline's ledger (FirestoreLedger, or a test's in-memory one) also keeps the
        # reconciliation's turns and intake failures; Pipeline types only the jobs' side of it.
        ledger = cast(ReconcileLedger, pipeline.ledger)
        found = reconcile_if_due(
            _config(), ledger, _intake, now=pipeline.clock(), on_outcome=_log_taken_in
        )
    except Exception as exc:
        structured_log.error(
            "reconciliation failed; the next pass will retry",
            error=f"{type(exc).__name__}: {exc}",
            event_id=cloud_event["id"],
        )
        return
    if found is not None and (found.lost or found.errors):
        structured_log.warning(
            "reconciliation: uploads taken in again",
            event_id=cloud_event["id"],
            **dataclasses.asdict(found),
        )


def _log_taken_in(lost: LostUpload, outcome: UploadDecision) -> None:
    structured_log.log(
        outcome.severity,
        f"reconciliation: {outcome.message}",
        dataset=outcome.dataset,
        why=lost.why,
        decision=outcome.decision,
        **outcome.fields,
    )
