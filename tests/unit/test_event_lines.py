"""`autotune watch`'s lines: cut to the terminal's width, JSON one object per line, --type."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.event_lines import event_document, fitted_line, json_line, wanted_types
from autotune.events import EventPayload, EventType, make_event
from autotune_local.demo import describe_event

LONG_REASON = "the service said: " + "quota exhausted; " * 30 + "THE END"


def failed_event(name: str = "incoming/data.jsonl"):
    payload = EventPayload(
        dataset_uri=f"gs://bkt/{name}",
        generation="17",
        state="FAILED",
        job_name="projects/p/locations/us-central1/tuningJobs/42",
        error=LONG_REASON,
    )
    return make_event(EventType.JOB_FAILED, payload)


@pytest.mark.parametrize("width", [40, 80, 120])
def test_a_long_event_is_one_line_within_the_width(width: int) -> None:
    line = fitted_line(describe_event(failed_event()), width)
    assert "\n" not in line and len(line) == width and line.endswith("…")
    assert line.startswith("autotune.job.v1.failed")


def test_a_short_event_is_left_whole_and_control_characters_are_escaped() -> None:
    line = fitted_line("autotune.job.v1.failed  gs://b/\x1b[2Jx\u202e.jsonl#1", 200)
    assert line == "autotune.job.v1.failed  gs://b/\\x1b[2Jx\\u202e.jsonl#1"


def test_json_line_is_the_cloudevent_with_the_whole_reason() -> None:
    event = failed_event("incoming/\x1b]0;owned\x07.jsonl")
    line = json_line(event)
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    doc = json.loads(line)
    assert doc == event_document(event)
    assert (
        doc["type"] == "autotune.job.v1.failed"
        and doc["id"] == event.id
        and doc["subject"] == event.subject
    )
    assert doc["data"]["error"] == LONG_REASON and doc["data"]["generation"] == "17"


def test_type_filter_takes_short_and_full_names() -> None:
    assert wanted_types(["rejected", "autotune.job.v1.succeeded"]) == {
        EventType.DATASET_REJECTED,
        EventType.JOB_SUCCEEDED,
    }
    assert wanted_types([]) == set(EventType)
    with pytest.raises(ValueError, match="'finished'"):
        wanted_types(["finished"])


def test_watch_refuses_an_unknown_type_before_looking_for_a_stack(tmp_path) -> None:
    result = CliRunner().invoke(app, ["watch", "--type", "finished", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown event type 'finished'" in result.output and "succeeded" in result.output
