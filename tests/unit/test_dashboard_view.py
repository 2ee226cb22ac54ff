"""The dashboard's data from plain values: fates, states, queue positions, slots, times, events."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from autotune.config import PipelineConfig
from autotune.dashboard.view import (
    Listing,
    build_view,
    queue_positions,
    report_link,
    reports_to_read,
)
from autotune.events import EventPayload, EventType, make_event
from autotune.intake.objects import StoredObject
from autotune.intake.reconciliation import ListedObject
from autotune.jobs.documents import Slots
from autotune.jobs.lifecycle import LedgerState, move, new_record, timestamp

CONFIG = PipelineConfig(project="p", bucket="bkt", max_concurrent_jobs=2)
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def listed(name: str, generation: str, seconds: float, **metadata: str) -> ListedObject:
    return ListedObject(
        StoredObject("bkt", name, generation, 10, metadata), T0 + timedelta(seconds=seconds)
    )


def report(name: str, generation: str, seconds: float, valid: str) -> ListedObject:
    return listed(f"reports/{name}/{generation}.json", "90", seconds, **{"autotune-valid": valid})


def record(name: str, generation: str, key: str, at: float):
    return new_record(
        idempotency_key=key,
        content_key=f"c-{key}",
        dataset_uri=f"gs://bkt/{name}",
        generation=generation,
        now=T0 + timedelta(seconds=at),
        model="gemini-3.5-flash",
        report_uri=f"gs://bkt/reports/{name}/{generation}.json",
    )


def test_every_upload_has_its_row_state_report_queue_place_and_times():
    done = record("incoming/done.jsonl", "1", "k-done", 2)
    steps: tuple[tuple[LedgerState, int, dict[str, Any]], ...] = (
        (LedgerState.SUBMITTING, 3, {}),
        (LedgerState.SUBMITTED, 4, {"job_name": "projects/p/locations/l/tuningJobs/7"}),
        (LedgerState.RUNNING, 6, {}),
        (
            LedgerState.SUCCEEDED,
            20,
            {"tuned_model": "projects/p/models/m1", "endpoint": "projects/p/endpoints/e1"},
        ),
    )
    for state, at, extra in steps:
        done = move(done, state, T0 + timedelta(seconds=at), **extra)
    running = move(
        move(
            record("incoming/run.jsonl", "2", "k-run", 30),
            LedgerState.SUBMITTING,
            T0 + timedelta(seconds=31),
        ),
        LedgerState.SUBMITTED,
        T0 + timedelta(seconds=32),
        job_name="projects/p/locations/l/tuningJobs/8",
    )
    second = move(
        record("incoming/second.jsonl", "4", "k-second", 41),
        LedgerState.QUEUED,
        T0 + timedelta(seconds=42),
        queue_order="b",
    )
    first = move(
        record("incoming/first.jsonl", "3", "k-first", 40),
        LedgerState.QUEUED,
        T0 + timedelta(seconds=41),
        queue_order="a",
    )
    hostile = "incoming/<script>alert(1)</script>.jsonl"
    listing = Listing(
        uploads=[
            listed("incoming/done.jsonl", "1", 0),
            listed("incoming/run.jsonl", "2", 29),
            listed("incoming/first.jsonl", "3", 39),
            listed("incoming/second.jsonl", "4", 40),
            listed(hostile, "5", 50),
            listed("incoming/late.jsonl", "6", 60),
            listed("incoming/notes.txt", "7", 61),
        ],
        reports=[
            report("incoming/done.jsonl", "1", 1.5, "true"),
            report("incoming/run.jsonl", "2", 29.5, "true"),
            report("incoming/first.jsonl", "3", 39.5, "true"),
            report("incoming/second.jsonl", "4", 40.5, "true"),
            report(hostile, "5", 51, "false"),
            listed("reports/incoming/done.jsonl/1.html", "91", 1.5),
        ],
        records=[done, running, first, second],
        slots=Slots(
            active={"k-run": timestamp(T0 + timedelta(seconds=31))},
            queued={"k-second": "b", "k-first": "a"},
        ),
    )
    hostile_report = f"reports/{hostile}/5.json"
    assert reports_to_read(listing, CONFIG) == [hostile_report]
    view = build_view(
        listing,
        {
            hostile_report: {
                "valid": False,
                "counts": {"invalid_json": 3},
                "errors": [{"code": "invalid_json", "severity": "error"}],
            }
        },
        CONFIG,
        now=T0 + timedelta(seconds=70),
    )

    rows = {row["object"]: row for row in view["uploads"]}
    assert [row["object"] for row in view["uploads"]][:2] == [
        "incoming/notes.txt",
        "incoming/late.jsonl",
    ]  # newest first
    assert {name: row["state"] for name, row in rows.items()} == {
        "incoming/done.jsonl": "SUCCEEDED",
        "incoming/run.jsonl": "SUBMITTED",
        "incoming/first.jsonl": "QUEUED",
        "incoming/second.jsonl": "QUEUED",
        hostile: "REJECTED",
        "incoming/late.jsonl": "VALIDATING",
        "incoming/notes.txt": "IGNORED",
    }
    assert (rows[hostile]["verdict"], rows[hostile]["errors"]) == ("rejected", 3)
    assert rows[hostile]["report_json"] == report_link(hostile_report)
    assert "<" not in rows[hostile]["report_json"] and rows[hostile]["report_html"] is None
    assert (
        rows["incoming/done.jsonl"]["report_html"]
        == "/report?name=reports%2Fincoming%2Fdone.jsonl%2F1.html"
    )
    assert (
        rows["incoming/first.jsonl"]["queue_position"],
        rows["incoming/second.jsonl"]["queue_position"],
    ) == (1, 2)
    assert rows["incoming/run.jsonl"]["queue_position"] is None
    finished = rows["incoming/done.jsonl"]
    assert (finished["tuned_model"], finished["endpoint"], finished["job_name"]) == (
        "projects/p/models/m1",
        "projects/p/endpoints/e1",
        "projects/p/locations/l/tuningJobs/7",
    )
    assert finished["elapsed"] == {"verdict": 1.5, "accepted": 2.0, "submitted": 4.0, "ended": 20.0}
    assert (
        finished["times"]["uploaded"] == "2026-12-02T12:00:00Z"
        and finished["times"]["ended"] == "2026-12-02T12:00:20.000000Z"
    )
    assert rows["incoming/late.jsonl"]["elapsed"] == {
        "verdict": None,
        "accepted": None,
        "submitted": None,
        "ended": None,
    }

    assert view["slots"]["used"] == 1 and view["slots"]["quota"] == 2
    assert view["slots"]["active"][0]["dataset_uri"] == "gs://bkt/incoming/run.jsonl"
    assert [(q["position"], q["dataset_uri"]) for q in view["queue"]] == [
        (1, "gs://bkt/incoming/first.jsonl"),
        (2, "gs://bkt/incoming/second.jsonl"),
    ]
    assert view["counts"] == {
        "IGNORED": 1,
        "QUEUED": 2,
        "REJECTED": 1,
        "SUBMITTED": 1,
        "SUCCEEDED": 1,
        "VALIDATING": 1,
    }
    msgspec.json.encode(view)  # the JSON endpoint serves it as it is


def test_a_ledger_record_whose_report_is_not_listed_still_has_a_row():
    orphan = record("incoming/gone.jsonl", "9", "k-gone", 0)
    view = build_view(Listing([], [], [orphan], Slots()), {}, CONFIG, now=T0)
    [row] = view["uploads"]
    assert (row["object"], row["state"], row["key"]) == (
        "incoming/gone.jsonl",
        "ACCEPTED",
        "k-gone",
    )


def test_queue_positions_follow_the_order_submit_takes_them():
    slots = Slots(queued={"b": "2026-01-02", "a": "2026-01-02", "c": "2026-01-01"})
    assert queue_positions(slots) == {"c": 1, "a": 2, "b": 3}
    assert slots.head() == "c"


def test_events_newest_first_with_their_detail():
    payload = EventPayload(
        dataset_uri="gs://bkt/incoming/a.jsonl", generation="1", state="FAILED", error="quota gone"
    )
    old = make_event(
        EventType.JOB_QUEUED,
        EventPayload(dataset_uri="gs://bkt/incoming/a.jsonl", generation="1", state="QUEUED"),
        now=T0,
    )
    new = make_event(EventType.JOB_FAILED, payload, now=T0 + timedelta(seconds=5))
    view = build_view(
        Listing([], [], [], Slots()), {}, CONFIG, events=[old, new], events_note="since now", now=T0
    )
    assert [(e["kind"], e["state"], e["detail"]) for e in view["events"]] == [
        ("job.failed", "FAILED", "quota gone"),
        ("job.queued", "QUEUED", None),
    ]
    assert view["events_note"] == "since now"


def test_console_links_only_on_google_cloud():
    listing = Listing(
        [listed("incoming/a b.jsonl", "1", 0)],
        [report("incoming/a b.jsonl", "1", 1, "false")],
        [],
        Slots(),
    )
    local = build_view(listing, {}, CONFIG, now=T0)["uploads"][0]
    cloud = build_view(listing, {}, CONFIG, now=T0, on_google_cloud=True)["uploads"][0]
    assert local["report_console"] is None
    assert cloud["report_console"] == (
        "https://console.cloud.google.com/storage/browser/_details/bkt/reports/incoming/a%20b.jsonl/1.json;tab=live_object"
    )
