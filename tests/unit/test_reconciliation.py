"""Reconciliation: which uploads count as lost, and a pass that takes them in again with the
real intake core and validator (storage and Pub/Sub in memory)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from intake_doubles import BUCKET, NOW, MemoryBus, MemoryStore
from job_doubles import MemoryLedger

from autotune.config import PipelineConfig, TuningDefaults
from autotune.events import EventType
from autotune.intake.objects import REPORT_VALID_METADATA, StoredObject, report_object_name
from autotune.intake.ports import IntakeDeps
from autotune.intake.reconciliation import (
    MAX_UPLOADS_PER_PASS,
    RECONCILE_WINDOW,
    ListedObject,
    find_lost_uploads,
    reconcile,
    reconcile_if_due,
)
from autotune.intake.upload import process_upload
from autotune.validation import DatasetSource, validate_dataset

CONFIG = PipelineConfig(
    project="p",
    bucket=BUCKET,
    defaults=TuningDefaults(model="gemini-3.5-flash", epochs=3),
    reconcile_every_seconds=60,
    reconcile_after_seconds=300,
)
SETTLED = timedelta(seconds=CONFIG.reconcile_after_seconds)


def good_jsonl(n: int = 20) -> bytes:
    def turn(role: str, text: str) -> dict:
        return {"role": role, "parts": [{"text": text}]}

    return b"".join(
        json.dumps({"contents": [turn("user", f"Q{i}?"), turn("model", f"A{i}.")]}).encode() + b"\n"
        for i in range(n)
    )


def listed(
    name: str,
    age: timedelta,
    *,
    generation: str = "7",
    metadata: dict | None = None,
    bucket: str = BUCKET,
) -> ListedObject:
    return ListedObject(
        StoredObject(bucket=bucket, name=name, generation=generation, metadata=metadata or {}),
        NOW - age,
    )


def report_for(
    name: str, age: timedelta, *, valid: bool, generation: str = "7"
) -> tuple[str, ListedObject]:
    report_name = report_object_name(CONFIG.reports_prefix, name, generation)
    return report_name, listed(
        report_name, age, metadata={REPORT_VALID_METADATA: "true" if valid else "false"}
    )


def lost_names(uploads, reports=(), claimed=()) -> list[str]:
    found = find_lost_uploads(uploads, dict(reports), set(claimed), config=CONFIG, now=NOW)
    return [lost.upload.name for lost in found]


# --- which uploads are lost (pure) -------------------------------------------------------------


def test_a_settled_upload_without_a_report_is_lost():
    assert lost_names([listed("incoming/a.jsonl", SETTLED)]) == ["incoming/a.jsonl"]
    assert lost_names([listed("incoming/a.tuning.json", SETTLED * 2)]) == ["incoming/a.tuning.json"]


def test_a_young_upload_may_still_be_on_its_way_and_an_old_one_is_history():
    assert lost_names([listed("incoming/a.jsonl", SETTLED - timedelta(seconds=1))]) == []
    assert lost_names([listed("incoming/a.jsonl", RECONCILE_WINDOW + timedelta(seconds=1))]) == []


@pytest.mark.parametrize(
    "name",
    ["notes/a.jsonl", "incoming/team/parts/train.jsonl", "incoming/readme.txt", "incoming/folder/"],
)
def test_objects_intake_ignores_are_never_lost(name):
    assert lost_names([listed(name, SETTLED)]) == []


def test_an_object_of_another_bucket_is_not_ours_to_take_in():
    assert lost_names([listed("incoming/a.jsonl", SETTLED, bucket="elsewhere")]) == []


def test_a_name_too_long_for_any_report_is_not_taken_in_again_and_again():
    name = "incoming/" + "n" * 1000 + ".jsonl"
    assert lost_names([listed(name, SETTLED)]) == []


def test_a_rejected_upload_is_done():
    assert (
        lost_names(
            [listed("incoming/a.jsonl", SETTLED)],
            [report_for("incoming/a.jsonl", SETTLED, valid=False)],
        )
        == []
    )


def test_an_accepted_upload_is_lost_only_while_no_ledger_record_names_its_report():
    upload = listed("incoming/a.jsonl", SETTLED * 2)
    report_name, report = report_for("incoming/a.jsonl", SETTLED, valid=True)
    assert lost_names([upload], [(report_name, report)]) == ["incoming/a.jsonl"]
    assert (
        lost_names([upload], [(report_name, report)], claimed=[f"gs://{BUCKET}/{report_name}"])
        == []
    )


def test_an_accepted_upload_whose_report_is_young_may_still_be_claimed():
    upload = listed("incoming/a.jsonl", SETTLED * 2)
    assert (
        lost_names([upload], [report_for("incoming/a.jsonl", timedelta(seconds=5), valid=True)])
        == []
    )


def test_the_report_of_another_generation_does_not_count():
    upload = listed("incoming/a.jsonl", SETTLED, generation="8")
    assert lost_names(
        [upload], [report_for("incoming/a.jsonl", SETTLED, valid=False, generation="7")]
    ) == ["incoming/a.jsonl"]


# --- a pass ------------------------------------------------------------------------------------


@pytest.fixture
def world():
    store = MemoryStore()
    bus = MemoryBus(store.effects)
    intake = IntakeDeps(
        store=store,
        bus=bus,
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        now=lambda: NOW,
    )
    return store, bus, intake, MemoryLedger()


def test_a_pass_takes_in_a_lost_upload_and_the_next_pass_leaves_it(world):
    store, bus, intake, ledger = world
    store.now = NOW - SETTLED
    good = store.put("incoming/good.jsonl", good_jsonl())
    bad = store.put("incoming/bad.jsonl", b"{not json\n")
    summary = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert (
        summary.lost == 2
        and summary.outcomes == {"accepted": 1, "rejected": 1}
        and not summary.errors
    )
    assert [e.type for e in bus.events if e.subject == good.uri] == [EventType.DATASET_ACCEPTED]
    assert [e.type for e in bus.events if e.subject == bad.uri] == [EventType.DATASET_REJECTED]
    [request] = bus.requests
    assert request.training.generation == good.generation
    # The request is claimed (the ledger names the report) and time passes: nothing is lost any more.
    ledger.docs[request.idempotency_key] = _record_of(request)
    store.now = NOW
    assert reconcile(CONFIG, intake, store, ledger, now=NOW + SETTLED).lost == 0


def test_an_accepted_upload_nobody_claimed_gets_the_same_request_again(world):
    store, bus, intake, ledger = world
    store.now = NOW - SETTLED * 2
    upload = store.put("incoming/good.jsonl", good_jsonl())
    assert (
        process_upload(upload, CONFIG, intake).decision == "accepted"
    )  # the request was then lost
    first = bus.requests[-1]
    summary = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert summary.lost == 1 and summary.outcomes == {"accepted": 1}
    again = bus.requests[-1]
    assert again.idempotency_key == first.idempotency_key and again.report_uri == first.report_uri
    accepted = [e for e in bus.events if e.type == EventType.DATASET_ACCEPTED]
    assert (
        len(accepted) == 2 and accepted[0].id == accepted[1].id
    )  # a copy subscribers drop by ce-id


def test_one_failing_upload_does_not_stop_the_pass(world):
    store, bus, intake, ledger = world
    store.now = NOW - SETTLED
    store.put("incoming/a-broken.jsonl", good_jsonl())
    store.put("incoming/b-good.jsonl", good_jsonl(21))
    original = store.read_chunks

    def read_chunks(name, generation):
        if "broken" in name:
            raise ConnectionError("storage unavailable")
        return original(name, generation)

    store.read_chunks = read_chunks
    summary = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert summary.lost == 2 and summary.outcomes == {"accepted": 1}
    assert (
        len(summary.errors) == 1
        and "a-broken.jsonl" in summary.errors[0]
        and "ConnectionError" in summary.errors[0]
    )


def test_a_pass_takes_in_the_oldest_lost_uploads_first_and_leaves_the_rest_to_the_next(world):
    store, bus, intake, ledger = world
    for i in range(MAX_UPLOADS_PER_PASS + 3):
        store.now = NOW - SETTLED - timedelta(seconds=100 - i)
        store.put(
            f"incoming/z{99 - i:02d}.jsonl", b"{}\n"
        )  # rejected at once; name order is against age order
    first = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert (first.lost, first.deferred) == (MAX_UPLOADS_PER_PASS, 3)
    assert [e.subject.rsplit("/", 1)[1] for e in bus.events][:2] == ["z99.jsonl", "z98.jsonl"]
    second = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert (second.lost, second.deferred) == (3, 0)


def test_a_pass_runs_at_most_once_a_period_across_callers_and_never_when_off(world):
    store, _, intake, ledger = world

    def connect():
        return intake, store

    assert reconcile_if_due(CONFIG, ledger, connect, now=NOW) is not None
    assert reconcile_if_due(CONFIG, ledger, connect, now=NOW + timedelta(seconds=59)) is None
    assert reconcile_if_due(CONFIG, ledger, connect, now=NOW + timedelta(seconds=60)) is not None
    off = PipelineConfig(project="p", bucket=BUCKET, reconcile_every_seconds=0)
    assert reconcile_if_due(off, MemoryLedger(), connect, now=NOW) is None


def _record_of(request):
    from autotune.jobs.lifecycle import new_record

    return new_record(
        idempotency_key=request.idempotency_key,
        content_key=request.content_key,
        dataset_uri=request.training.uri,
        generation=request.training.generation,
        now=NOW,
        report_uri=request.report_uri,
    )


def test_uploads_that_failed_before_wait_behind_the_others_and_never_starve_a_lost_one(world):
    store, bus, intake, ledger = world
    store.now = NOW - SETTLED - timedelta(seconds=60)
    for i in range(MAX_UPLOADS_PER_PASS + 2):  # older than the lost upload: first in line by age
        store.put(f"incoming/poison-{i:02d}.jsonl", good_jsonl())
    store.now = NOW - SETTLED
    lost = store.put("incoming/lost.jsonl", good_jsonl(23))
    original = store.read_chunks

    def read_chunks(name, generation):
        if "poison" in name:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return original(name, generation)

    store.read_chunks = read_chunks
    first = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert first.lost == MAX_UPLOADS_PER_PASS and first.deferred == 3 and not first.outcomes
    second = reconcile(CONFIG, intake, store, ledger, now=NOW + timedelta(seconds=1))
    # The two poison uploads never tried and the lost one go first; the failed ones pause.
    assert (
        second.lost == 3
        and second.outcomes == {"accepted": 1}
        and second.waiting == MAX_UPLOADS_PER_PASS
    )
    assert [e.type for e in bus.events if e.subject == lost.uri] == [EventType.DATASET_ACCEPTED]
    # Failed again the same way: each later try waits twice as long.
    period = timedelta(seconds=CONFIG.reconcile_every_seconds)
    third = reconcile(CONFIG, intake, store, ledger, now=NOW + period)
    assert third.errors and third.waiting == 2  # the two tried once, a second ago, still pause
    twice = next(f for f in ledger.intake_failures().values() if f.times == 2)
    assert not twice.due(NOW + period * 2.5, CONFIG.reconcile_every_seconds)
    assert twice.due(NOW + period * 3, CONFIG.reconcile_every_seconds)


def test_a_ledger_that_lost_its_records_does_not_resubmit_what_was_accepted_before_it(world):
    """The local Firestore emulator restarted empty: datasets accepted (and cancelled, skipped,
    tuned) before are not the new ledger's to claim; an upload never validated still is."""
    store, bus, intake, ledger = world
    store.now = NOW - SETTLED * 3
    accepted = store.put("incoming/cancelled-before.jsonl", good_jsonl())
    assert process_upload(accepted, CONFIG, intake).decision == "accepted"
    store.put("incoming/never-seen.jsonl", good_jsonl(22))
    ledger.started = NOW - SETTLED  # the emulator came back empty after both uploads
    summary = reconcile(CONFIG, intake, store, ledger, now=NOW)
    assert summary.lost == 1 and summary.outcomes == {"accepted": 1}
    assert [r.training.object for r in bus.requests] == [
        "incoming/cancelled-before.jsonl",
        "incoming/never-seen.jsonl",
    ]
