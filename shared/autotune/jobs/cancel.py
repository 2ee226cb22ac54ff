"""Cancelling a dataset's tuning from the command line."""

from __future__ import annotations

from autotune.jobs.decisions import cancel_queued
from autotune.jobs.documents import JobOutcome
from autotune.jobs.lifecycle import ACTIVE_JOB_STATES, LedgerState
from autotune.jobs.pipeline import Pipeline, publish_announced, update_record


def cancel(pipeline: Pipeline, key: str) -> JobOutcome:
    """Cancel a dataset's tuning: a queued one leaves the queue; a running job is cancelled on the
    service and the next status tick records CANCELLED."""
    record = pipeline.ledger.get(key)
    if record is None:
        raise LookupError(f"no ledger record {key}")
    if record.state == LedgerState.QUEUED:
        change = update_record(
            pipeline, key, lambda r, s: cancel_queued(r, s, now=pipeline.clock())
        )
        publish_announced(pipeline, change)
        return JobOutcome.CANCELLED if change else JobOutcome.DUPLICATE
    if record.state in ACTIVE_JOB_STATES and record.job_name:
        pipeline.service.cancel(record.job_name)
        return JobOutcome.CANCELLED
    raise ValueError(
        f"{record.dataset_uri} is {record.state}: only a QUEUED, SUBMITTED or RUNNING dataset can be cancelled"
    )
