"""submit: one TuningRequest from tuning-requests becomes exactly one Vertex AI tuning job.

Pub/Sub (through Eventarc, or the local event bridge) delivers
`google.cloud.pubsub.topic.v1.messagePublished` with data {"message": {...}, "subscription"}.
Returning acknowledges: submitted, queued (quota full), failed for good, or a duplicate.
Raising makes Pub/Sub deliver it again with backoff: a transient service error, or a message
that is not a TuningRequest, which after the retries lands in the dead-letter topic (the log
line says why). The decisions live in autotune.jobs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

import functions_framework

from autotune import structured_log
from autotune.config import PipelineConfig
from autotune.function_wiring import Wired
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.submit import submit_message


def _connect() -> Pipeline:
    from autotune.adapters.jobs import connect_pipeline

    return connect_pipeline(PipelineConfig.from_env())


_pipeline: Wired[Pipeline] = Wired(_connect)  # built on the first message


def configure(*, pipeline: Callable[[], Pipeline]) -> None:
    """Serve with `pipeline()` instead of the pipeline built from the environment."""
    _pipeline.build_with(pipeline)


@functions_framework.cloud_event
def submit(cloud_event) -> None:
    message = (cloud_event.data or {}).get("message") or {}
    message_id = str(message.get("messageId", ""))
    try:
        data = base64.b64decode(message.get("data", ""), validate=True)
    except (binascii.Error, TypeError) as exc:
        structured_log.error(
            "tuning request rejected: message data is not base64; it will go to the dead-letter topic",
            reason=str(exc),
            message_id=message_id,
        )
        raise
    outcome = submit_message(_pipeline(), data, message_id=message_id)
    structured_log.info(
        f"tuning request {outcome}", message_id=message_id, event_id=cloud_event["id"]
    )
