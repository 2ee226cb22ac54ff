"""`autotune smoke` names the link that failed, whatever the client library raised: a refusal
(a GoogleAPICallError) or a retry that ran out (a RetryError, which is not one)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.api_core import exceptions as gexc

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
