"""`autotune smoke` against the local stack: the rejected event of a deliberately invalid upload
arrives and everything is cleaned up; when a link is broken, the result names it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.smoke import SMOKE_STEM, run_smoke

pytestmark = pytest.mark.integration


def leftovers(stack) -> list[str]:
    objects = [
        blob.name
        for blob in stack.storage_client().list_blobs(stack.bucket)
        if SMOKE_STEM in blob.name
    ]
    subscriptions = [
        s.name
        for s in stack.subscriber().list_subscriptions(
            request={"project": f"projects/{stack.project}"}
        )
        if SMOKE_STEM in s.name
    ]
    return objects + subscriptions


def smoke(stack, **overrides):
    names = {
        "project": stack.project,
        "bucket": stack.bucket,
        "events_topic": stack.config.events_topic,
        "incoming_prefix": stack.config.incoming_prefix,
        "reports_prefix": stack.config.reports_prefix,
        **overrides,
    }
    return run_smoke(stack.storage_client(), stack.subscriber(), echo=lambda _: None, **names)


def test_autotune_smoke_passes_on_a_working_stack_and_leaves_nothing(local_stack):
    result = CliRunner().invoke(
        app, ["smoke", "--state-dir", str(local_stack.state_dir), "--timeout", "120"]
    )
    assert result.exit_code == 0, result.output
    assert "smoke test passed" in result.output
    assert leftovers(local_stack) == []


def test_an_unwritable_object_is_named(local_stack):
    result = smoke(local_stack, bucket="no-such-bucket", timeout=10)
    assert not result.ok and result.failed_link == "object not written"
    assert leftovers(local_stack) == []


def test_a_missing_validate_function_is_named_as_the_trigger(make_local_stack):
    stack = make_local_stack(functions={"validate": None, "submit": None, "status": None})
    result = smoke(stack, timeout=15)
    assert (
        not result.ok and result.failed_link == "trigger not fired" and "no report" in result.detail
    )
    assert leftovers(stack) == []
    stack.stop()


def test_an_event_published_elsewhere_is_named(local_stack):
    """The report is written, but the event goes to a topic the check does not listen on."""
    result = smoke(local_stack, events_topic=local_stack.config.requests_topic, timeout=20)
    assert (
        not result.ok and result.failed_link == "event not published" and "report" in result.detail
    )
    assert leftovers(local_stack) == []
