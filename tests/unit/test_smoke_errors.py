"""`autotune smoke` names the link that failed, whatever the client library raised: a refusal
(a GoogleAPICallError) or a retry that ran out (a RetryError, which is not one)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.api_core import exceptions as gexc

from autotune.events import EventPayload, EventType, make_event, to_pubsub_message
from autotune.smoke import run_smoke

RAN_OUT = gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("unreachable"))


class Storage:
    """Cloud Storage as the check uses it: a blob to upload and delete."""

    def __init__(self, upload_error: Exception | None = None) -> None:
        self.upload_error = upload_error
        self.deleted: list[str] = []

    def bucket(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(blob=self.blob)

    def blob(self, name: str) -> SimpleNamespace:
        def upload_from_string(data: bytes, content_type: str) -> None:
            if self.upload_error is not None:
                raise self.upload_error

        return SimpleNamespace(
            name=name,
            generation=None,
            upload_from_string=upload_from_string,
            delete=lambda: self.deleted.append(name),
        )


class Subscriber:
    def __init__(self, create_error: Exception | None = None) -> None:
        self.create_error = create_error
        self.deleted: list[str] = []

    def create_subscription(self, request: dict) -> None:
        if self.create_error is not None:
            raise self.create_error

    def delete_subscription(self, request: dict) -> None:
        self.deleted.append(request["subscription"])


def smoke(storage: Storage, subscriber: Subscriber):
    return run_smoke(
        storage,
        subscriber,
        project="p",
        bucket="b",
        events_topic="tuning-events",
        echo=lambda _: None,
    )


@pytest.mark.parametrize("error", [gexc.PermissionDenied("pubsub.subscriptions.create"), RAN_OUT])
def test_a_subscription_that_cannot_be_made_is_named(error: Exception) -> None:
    storage, subscriber = Storage(), Subscriber(create_error=error)
    result = smoke(storage, subscriber)
    assert not result.ok and result.failed_link == "could not subscribe to tuning-events"
    assert subscriber.deleted == []  # there is no subscription to delete


@pytest.mark.parametrize("error", [gexc.Forbidden("storage.objects.create"), RAN_OUT])
def test_an_upload_that_fails_is_named_and_its_subscription_removed(error: Exception) -> None:
    storage, subscriber = Storage(upload_error=error), Subscriber()
    result = smoke(storage, subscriber)
    assert not result.ok and result.failed_link == "object not written"
    assert len(subscriber.deleted) == 1 and storage.deleted  # nothing left behind


class Delivering(Subscriber):
    """Subscribes, then answers pulls from `pulls` (an error to raise, or the rejected event of
    the check's own dataset) and refuses every acknowledgement with `ack_error`."""

    def __init__(self, pulls: list[Exception | str], ack_error: Exception | None) -> None:
        super().__init__()
        self.pulls, self.ack_error = pulls, ack_error
        self.subscription = ""

    def create_subscription(self, request: dict) -> None:
        self.subscription = request["name"]

    def pull(self, request: dict, timeout: float) -> SimpleNamespace:
        answer = self.pulls.pop(0) if self.pulls else RAN_OUT
        if isinstance(answer, Exception):
            raise answer
        data, attributes = to_pubsub_message(
            make_event(
                EventType.DATASET_REJECTED,
                EventPayload(dataset_uri=answer, generation="1"),
            )
        )
        message = SimpleNamespace(data=data, attributes=attributes)
        return SimpleNamespace(received_messages=[SimpleNamespace(ack_id="a1", message=message)])

    def acknowledge(self, request: dict) -> None:
        if self.ack_error is not None:
            raise self.ack_error


def test_a_pull_whose_retry_runs_out_is_waited_out_and_an_unacknowledged_event_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import autotune.smoke as smoke_module

    monkeypatch.setattr(smoke_module.uuid, "uuid4", lambda: SimpleNamespace(hex="0" * 32))
    dataset_uri = f"gs://b/incoming/{smoke_module.SMOKE_STEM}-{'0' * 12}.jsonl"
    subscriber = Delivering([RAN_OUT, dataset_uri], ack_error=RAN_OUT)
    result = run_smoke(
        Storage(),
        subscriber,
        project="p",
        bucket="b",
        events_topic="tuning-events",
        timeout=30,
        echo=lambda _: None,
    )
    assert result.ok and result.dataset_uri == dataset_uri
    assert subscriber.deleted == [subscriber.subscription]
