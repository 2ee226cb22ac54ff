"""`autotune smoke`: proof that a deployment works end to end, without a tuning job.

It uploads a small, deliberately invalid dataset under the incoming prefix, and waits for its
`autotune.dataset.v1.rejected` event on tuning-events through a subscription of its own (made
before the upload, so the event cannot pass unseen). That one event needs every link a real
dataset needs up to validation: the object written, the storage trigger fired, validate's report
written, its event published. When the event does not come within the bound, what can be seen
from outside names the first broken link. The object, its report and the subscription are
removed in every case. Nothing is submitted: an invalid dataset never reaches the tuning service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autotune.events import EventType, from_pubsub_message
from autotune.intake.objects import html_report_name, report_object_name

# Two lines no tuning could take: an object that is not a conversation, and a line that is not JSON.
SMOKE_DATASET = b'{"autotune smoke test": "this line is not a tuning example"}\nnot JSON at all\n'
SMOKE_STEM = "autotune-smoke"


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    dataset_uri: str
    seconds: float
    failed_link: str = ""  # "" when ok: object not written, trigger not fired, report not written, event not published
    detail: str = ""


def run_smoke(
    storage: Any,
    subscriber: Any,
    *,
    project: str,
    bucket: str,
    events_topic: str,
    incoming_prefix: str = "incoming/",
    reports_prefix: str = "reports/",
    timeout: float = 180.0,
    echo: Callable[[str], None] = print,
) -> SmokeResult:
    """`storage` is a google.cloud.storage.Client, `subscriber` a pubsub_v1.SubscriberClient."""
    from google.api_core import exceptions as gexc

    run_id = uuid.uuid4().hex[:12]
    object_name = f"{incoming_prefix}{SMOKE_STEM}-{run_id}.jsonl"
    dataset_uri = f"gs://{bucket}/{object_name}"
    subscription = f"projects/{project}/subscriptions/{SMOKE_STEM}-{run_id}"
    topic = f"projects/{project}/topics/{events_topic}"
    began = time.monotonic()
    blob = storage.bucket(bucket).blob(object_name)
    generation = ""
    subscribed = False
    try:
        try:
            subscriber.create_subscription(
                request={"name": subscription, "topic": topic, "ack_deadline_seconds": 10}
            )
            subscribed = True
        except gexc.GoogleAPIError as exc:
            return SmokeResult(
                False,
                dataset_uri,
                time.monotonic() - began,
                "could not subscribe to tuning-events",
                _said(exc),
            )
        echo(f"listening on {events_topic} through {subscription.rsplit('/', 1)[1]}")
        try:
            blob.upload_from_string(SMOKE_DATASET, content_type="application/jsonl")
            generation = str(blob.generation)
        except gexc.GoogleAPIError as exc:
            return SmokeResult(
                False, dataset_uri, time.monotonic() - began, "object not written", _said(exc)
            )
        echo(
            f"uploaded {dataset_uri} (generation {generation}), a deliberately invalid dataset; waiting for its rejected event"
        )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if _rejected_arrived(
                subscriber,
                subscription,
                dataset_uri,
                min(10.0, max(1.0, deadline - time.monotonic())),
            ):
                return SmokeResult(True, dataset_uri, time.monotonic() - began)
        link, detail = _diagnose(storage, bucket, object_name, generation, reports_prefix, timeout)
        return SmokeResult(False, dataset_uri, time.monotonic() - began, link, detail)
    finally:
        _clean_up(
            storage,
            subscriber,
            bucket,
            object_name,
            generation,
            reports_prefix,
            subscription if subscribed else None,
        )


def _rejected_arrived(subscriber: Any, subscription: str, dataset_uri: str, wait: float) -> bool:
    from google.api_core import exceptions as gexc

    try:
        response = subscriber.pull(
            request={"subscription": subscription, "max_messages": 20}, timeout=wait
        )
    except (gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.RetryError):
        return False  # nothing arrived in time; the caller asks again until its deadline
    if not response.received_messages:
        return False
    try:
        subscriber.acknowledge(
            request={
                "subscription": subscription,
                "ack_ids": [m.ack_id for m in response.received_messages],
            }
        )
    except gexc.GoogleAPIError:
        pass  # the messages are read; unacknowledged, they only come again to this subscription
    for received in response.received_messages:
        attributes = dict(received.message.attributes)
        if (
            attributes.get("ce-type") != EventType.DATASET_REJECTED.value
            or attributes.get("ce-subject") != dataset_uri
        ):
            continue
        try:
            from_pubsub_message(received.message.data, attributes)
        except Exception:  # any failure: a malformed event is not the one awaited
            continue
        return True
    return False


def _diagnose(
    storage: Any,
    bucket: str,
    object_name: str,
    generation: str,
    reports_prefix: str,
    timeout: float,
) -> tuple[str, str]:
    """The first link that visibly failed, from what a user can read."""
    if storage.bucket(bucket).get_blob(object_name) is None:
        return (
            "object not written",
            f"gs://{bucket}/{object_name} is not in the bucket after the upload returned",
        )
    report = report_object_name(reports_prefix, object_name, generation)
    if storage.bucket(bucket).get_blob(report) is None:
        return (
            "trigger not fired",
            f"no report gs://{bucket}/{report} within {timeout:.0f} s: the storage trigger did not run validate, or validate "
            "failed before writing its report (its trigger, its logs, its service account's read and write rights on the bucket)",
        )
    return (
        "event not published",
        f"the report gs://{bucket}/{report} was written but no rejected event arrived within {timeout:.0f} s: validate's "
        "right to publish on tuning-events, or the topic's name in the configuration",
    )


def _clean_up(
    storage: Any,
    subscriber: Any,
    bucket: str,
    object_name: str,
    generation: str,
    reports_prefix: str,
    subscription: str | None,
) -> None:
    from google.api_core import exceptions as gexc

    names = [object_name]
    if generation:
        # validate writes the HTML page beside the JSON report: both go, or the check leaves one behind
        report = report_object_name(reports_prefix, object_name, generation)
        names += [report, html_report_name(report)]
    for name in names:
        try:
            storage.bucket(bucket).blob(name).delete()
        except gexc.NotFound:
            pass
    if subscription is not None:
        try:
            subscriber.delete_subscription(request={"subscription": subscription})
        except gexc.NotFound:
            pass


def _said(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)
