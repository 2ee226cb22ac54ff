"""status: on each tick of status-ticks, poll the active tuning jobs and fill free job slots.

Vertex AI announces no job end, so Cloud Scheduler (locally, the stack's ticker) publishes a
tick and this function records every job state change, publishes each job event once, takes
over submissions whose submitter died, and submits the oldest queued dataset when a slot frees.
A tick is always acknowledged: the ledger holds all state, so the next tick redoes whatever
this one could not, and a stale tick is not worth a retry.
"""

from __future__ import annotations

import dataclasses
import functools

import functions_framework

from autotune import structured_log
from autotune.config import PipelineConfig
from autotune.submission import Pipeline, status_tick


@functools.cache
def _pipeline() -> Pipeline:
    from autotune.adapters.jobs import connect_pipeline

    return connect_pipeline(PipelineConfig.from_env())


@functions_framework.cloud_event
def status(cloud_event) -> None:
    try:
        summary = status_tick(_pipeline())
    except Exception as exc:  # noqa: BLE001 (see the docstring: the next tick retries)
        structured_log.error("status tick failed; the next tick will retry", error=f"{type(exc).__name__}: {exc}",
                             event_id=cloud_event["id"])
        return
    if summary.changed or summary.promoted or summary.taken_over or summary.published or summary.errors:
        structured_log.info("status tick", event_id=cloud_event["id"], **dataclasses.asdict(summary))
