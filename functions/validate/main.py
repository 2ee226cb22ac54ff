"""validate: a storage object was finalized; if it is a dataset, check it and pass it on.

Eventarc (or the local event bridge) delivers `google.cloud.storage.object.v1.finalized`.
Returning acknowledges the event; raising (a storage or Pub/Sub error) makes it come again.
The rules live in autotune.intake; this file only wires the Google clients to them.
"""

from __future__ import annotations

from collections.abc import Callable

import functions_framework

from autotune import structured_log
from autotune.config import PipelineConfig
from autotune.function_wiring import Wired
from autotune.intake.objects import UnreadableEvent, stored_object_from_event
from autotune.intake.ports import IntakeDeps
from autotune.intake.upload import process_upload


def _connect() -> IntakeDeps:
    from autotune.adapters.intake import connect_intake

    return connect_intake(_config())[0]


_config: Wired[PipelineConfig] = Wired(PipelineConfig.from_env)
_deps: Wired[IntakeDeps] = Wired(_connect)  # built on the first event


def configure(
    *,
    config: Callable[[], PipelineConfig] | None = None,
    deps: Callable[[], IntakeDeps] | None = None,
) -> None:
    """Serve with these instead of what the environment builds (each on first use)."""
    if config is not None:
        _config.build_with(config)
    if deps is not None:
        _deps.build_with(deps)


@functions_framework.cloud_event
def validate(cloud_event) -> None:
    trace = _trace(cloud_event)
    try:
        uploaded = stored_object_from_event(cloud_event.data)
    except UnreadableEvent as exc:
        structured_log.error(
            "unreadable storage event acknowledged",
            event_id=cloud_event["id"],
            error=str(exc),
            trace=trace,
        )
        return
    config, deps = _config(), _deps()
    try:
        outcome = process_upload(uploaded, config, deps)
    except Exception as exc:
        # Storage or Pub/Sub failed: raising refuses the event, so it is delivered again.
        structured_log.error(
            "failed; the event will be delivered again",
            dataset=uploaded.uri,
            trace=trace,
            decision="retry",
            event_id=cloud_event["id"],
            generation=uploaded.generation,
            error=type(exc).__name__,
        )
        raise
    structured_log.log(
        outcome.severity,
        outcome.message,
        dataset=outcome.dataset,
        trace=trace,
        decision=outcome.decision,
        event_id=cloud_event["id"],
        **outcome.fields,
    )


def _trace(cloud_event) -> str | None:
    return structured_log.trace_from_traceparent(cloud_event.get("traceparent"), _config().project)
