"""What submit re-checks before acting on a tuning request (autotune.jobs.request_checks), the bound on
a request's size, the queue order by the triggering upload, and the quarantine decision."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from autotune.intake.objects import REPORT_REQUEST_FIELD, pinned_object_name
from autotune.jobs.decisions import quarantine
from autotune.jobs.documents import Slots
from autotune.jobs.job_spec import queue_order
from autotune.jobs.lifecycle import LedgerState, move, new_record
from autotune.jobs.request import (
    MAX_REQUEST_BYTES,
    DatasetRef,
    InvalidTuningRequest,
    TuningRequest,
    content_key,
    decode_request,
    idempotency_key,
)
from autotune.jobs.request_checks import catalog_settings_errors, request_refusal
from autotune.settings import TuningSettings

BUCKET = "bkt"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SHA = hashlib.sha256(b"validated bytes").hexdigest()
PINNED = pinned_object_name("reports/", SHA)


def genuine(**settings) -> TuningRequest:
    values = {"model": "gemini-3.5-flash", "epochs": 3, "region": "us-central1", **settings}
    tuning = TuningSettings(**values)
    content = content_key(SHA, None, tuning)
    return TuningRequest(
        idempotency_key=idempotency_key(BUCKET, "incoming/parts/t.jsonl", "111", content),
        content_key=content,
        training=DatasetRef(
            bucket=BUCKET,
            object="incoming/parts/t.jsonl",
            generation="111",
            sha256=SHA,
            size=15,
            pinned_object=PINNED,
            pinned_generation="900",
        ),
        settings=tuning,
        report_uri=f"gs://{BUCKET}/reports/incoming/m.tuning.json/222.json",
        requested_at="2026-12-02T12:00:00Z",
        trigger_object="incoming/m.tuning.json",
        trigger_generation="222",
    )


def report_for(request: TuningRequest, *, valid: bool = True) -> bytes:
    keys = {"idempotency_key": request.idempotency_key, "content_key": request.content_key}
    return json.dumps({"valid": valid, REPORT_REQUEST_FIELD: keys}).encode()


def refusal(
    request: TuningRequest, *, report: bytes | None = b"", generations: dict | None = None
) -> str | None:
    return request_refusal(
        request,
        bucket=BUCKET,
        reports_prefix="reports/",
        report=report_for(request) if report == b"" else report,
        current_generations={PINNED: "900"} if generations is None else generations,
        settings_errors=catalog_settings_errors,
    )


def refused(request: TuningRequest, **kwargs: Any) -> str:
    why = refusal(request, **kwargs)
    assert why is not None, "the request was not refused"
    return why


def test_a_genuine_request_passes():
    assert refusal(genuine()) is None


def test_no_report_or_a_rejecting_one_is_refused():
    assert "never validated" in refused(genuine(), report=None)
    assert "does not say valid" in refused(genuine(), report=report_for(genuine(), valid=False))


def test_a_report_that_accepted_other_settings_is_refused():
    forged = genuine(epochs=5)
    assert "accepted another request" in refused(forged, report=report_for(genuine()))


def test_keys_that_do_not_hash_from_the_fields_are_refused():
    request = genuine()
    assert "content key" in refused(msgspec.structs.replace(request, content_key="0" * 40))
    assert "idempotency key" in refused(msgspec.structs.replace(request, idempotency_key="0" * 40))


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"epochs": 1_000_000}, "epochs"),
        ({"learning_rate_multiplier": 1e9}, "learning_rate"),
        ({"adapter_size": 64}, "adapter"),
        ({"region": "asia-east1"}, "region"),
    ],
)
def test_settings_out_of_limits_are_refused_even_with_a_matching_report(settings, why):
    request = genuine(**settings)
    problem = refusal(request)
    assert problem is not None and "out of limits" in problem and why in problem


def test_a_pinned_copy_missing_replaced_or_misnamed_is_refused():
    assert "no longer exists" in refused(genuine(), generations={PINNED: None})
    assert "written over" in refused(genuine(), generations={PINNED: "901"})
    request = genuine()
    misnamed = msgspec.structs.replace(
        request,
        training=msgspec.structs.replace(request.training, pinned_object="reports/pinned/x.jsonl"),
    )
    assert "not the one named by its validated sha256" in refused(
        misnamed, generations={"reports/pinned/x.jsonl": "900"}
    )
    unpinned = msgspec.structs.replace(
        request, training=msgspec.structs.replace(request.training, pinned_object=None)
    )
    assert "no pinned copy" in refused(unpinned)


def test_a_report_uri_not_of_the_trigger_is_refused():
    request = msgspec.structs.replace(
        genuine(), report_uri=f"gs://{BUCKET}/reports/incoming/other.jsonl/1.json"
    )
    assert "not the report of the upload" in refused(request)


@pytest.mark.parametrize("field", ["display_name", "model"])
def test_unbounded_or_unencodable_text_is_refused(field):
    assert "characters long" in refused(genuine(**{field: "n" * 5000}))
    assert "surrogate" in refused(genuine(**{field: "n\ud800"}))


def test_an_oversized_request_is_not_decoded():
    with pytest.raises(InvalidTuningRequest, match="at most"):
        decode_request(b" " * (MAX_REQUEST_BYTES + 1))


def test_queue_order_is_the_triggering_uploads_not_the_training_files():
    request = genuine()
    assert queue_order(request) == f"{222:020d}"
    older_manifest = msgspec.structs.replace(request, trigger_generation="5")
    assert queue_order(older_manifest) < queue_order(request)


def test_quarantine_fails_a_record_slimmed_to_what_can_be_written():
    record = new_record(
        idempotency_key="k",
        content_key="c",
        dataset_uri=f"gs://{BUCKET}/x.jsonl",
        generation="1",
        now=NOW,
        request={"settings": {"display_name": "n" * 1_000_000}},
    )
    record = move(record, LedgerState.SUBMITTING, NOW)
    change = quarantine(
        record, Slots(active={"k": "t"}), error="400 maximum entity size is 1048576 bytes", now=NOW
    )
    assert (
        change is not None
        and change.record is not None
        and change.record.error is not None
        and change.slots is not None
    )
    assert change.record.state == LedgerState.FAILED and change.record.request is None
    assert "quarantined" in change.record.error and "k" not in change.slots.active
    assert [e.type for e in change.record.outbox] == ["autotune.job.v1.failed"]
    assert len(msgspec.json.encode(change.record)) < 10_000
    assert quarantine(change.record, change.slots, error="again", now=NOW) is None


def test_object_names_with_control_characters_are_names_like_any_other():
    """Cloud Storage allows a tab in a name; only what cannot be encoded or is too long is refused."""
    from autotune.jobs.request_checks import object_name_problem

    assert object_name_problem("incoming/a\tb.jsonl") is None
    assert object_name_problem("incoming/\ud800.jsonl") == "is not encodable as UTF-8"
    problem = object_name_problem("n" * 1025)
    assert problem is not None and "1024" in problem


def test_submit_refuses_a_setting_only_when_the_catalog_confirms_the_limit():
    """gemini-3.5-flash-lite's regions are unconfirmed in the catalog (a warning in the report), so
    submit does not refuse the request for its region; gemini-3.5-flash's are confirmed."""
    assert catalog_settings_errors(genuine(model="gemini-3.5-flash-lite", region="us-west1")) == []
    errors = catalog_settings_errors(genuine(model="gemini-3.5-flash", region="us-west1"))
    assert len(errors) == 1 and errors[0].startswith("region:")
