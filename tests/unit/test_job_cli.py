"""`autotune status` / `cancel` find a record by whatever the user has at hand."""

import json
from datetime import UTC, datetime

from autotune.cli.jobs import describe_record, find_records, record_json
from autotune.jobs.lifecycle import LedgerState, move, new_record

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB = "projects/p/locations/us-central1/tuningJobs/123456"


def record(name: str, generation: str, key: str, *, job: str | None = None, at: datetime = NOW):
    r = new_record(
        idempotency_key=key,
        content_key="c",
        dataset_uri=f"gs://bkt/{name}",
        generation=generation,
        now=at,
        model="gemini-2.5-flash",
    )
    if job:
        r = move(
            move(r, LedgerState.SUBMITTING, at),
            LedgerState.SUBMITTED,
            at,
            job_name=job,
            reason="job created",
        )
    return r


OLD = record("incoming/a.jsonl", "1", "k1", at=NOW)
NEW = record("incoming/a.jsonl", "2", "k2", job=JOB, at=NOW.replace(hour=13))
OTHER = record("incoming/sub/b.jsonl", "3", "k3")
ALL = [OLD, NEW, OTHER]


def test_by_uri_object_or_file_name_newest_first():
    for query in ("gs://bkt/incoming/a.jsonl", "incoming/a.jsonl", "a.jsonl"):
        assert [r.idempotency_key for r in find_records(ALL, query)] == ["k2", "k1"]


def test_by_job_name_or_id_key_or_version():
    assert find_records(ALL, JOB) == [NEW]
    assert find_records(ALL, "123456") == [NEW]
    assert find_records(ALL, "k3") == [OTHER]
    assert find_records(ALL, "gs://bkt/incoming/a.jsonl#1") == [OLD]


def test_no_match():
    assert find_records(ALL, "nothing.jsonl") == []
    assert find_records(ALL, "999") == []


def test_describe_and_json():
    text = describe_record(NEW)
    assert "SUBMITTED" in text and JOB in text and "job created" in text
    data = record_json(NEW)
    assert data["state"] == "SUBMITTED" and "outbox" not in data


# An object name an uploader chose: retitles the window, clears the screen, reverses the text.
HOSTILE = "incoming/\x1b]0;owned\x07\x1b[2J\u202egnp.jsonl"


def test_describe_escapes_control_characters_of_names_and_reasons():
    hostile = move(
        record(HOSTILE, "4", "k4"), LedgerState.QUEUED, NOW, reason="waiting\x1b[1A\rfake line"
    )
    text = describe_record(hostile)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    assert "\\x1b]0;owned\\x07" in text and "\\u202e" in text and "\\x1b[1A\\x0dfake line" in text


def test_jobs_table_escapes_control_characters_and_reads_no_markup(monkeypatch):
    from typer.testing import CliRunner

    import autotune.cli.uploads as uploads_cli
    from autotune.cli import app

    class Bucket:
        def records(self):
            return [record(HOSTILE + "[bold]x[/bold]", "5", "k5")]

        def fates(self, records):
            return []

    monkeypatch.setattr(uploads_cli, "connect_bucket", lambda state_dir: Bucket())
    result = CliRunner().invoke(
        app, ["jobs"], env={"COLUMNS": "200"}
    )  # wide enough for the whole name
    assert result.exit_code == 0, result.output
    assert (
        "\x1b" not in result.output
        and "\x07" not in result.output
        and "\u202e" not in result.output
    )
    assert "[bold]x[/bold]" in result.output


def test_terminal_text_keeps_our_newlines_and_escapes_theirs():
    from autotune.cli.terminal import terminal_text

    assert terminal_text("a\nb\x9bc\ud800") == "a\nb\\x9bc\\ud800"
    assert terminal_text("a\nb", newlines=False) == "a\\x0ab"


def _jobs_output(monkeypatch, columns: int, *args: str) -> str:
    from typer.testing import CliRunner

    import autotune.cli.uploads as uploads_cli
    from autotune.cli import app

    long = record("incoming/a-long-dataset-name.jsonl", "7", "k7", job=JOB)
    long = move(
        long,
        LedgerState.FAILED,
        NOW,
        error="the service said: " + "quota exhausted, try later; " * 20 + "THE END",
    )

    class Bucket:
        def records(self):
            return [long, OTHER]

        def fates(self, records):
            return []

    monkeypatch.setattr(uploads_cli, "connect_bucket", lambda state_dir: Bucket())
    result = CliRunner().invoke(app, ["jobs", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_jobs_table_fits_the_terminal_and_cuts_long_reasons(monkeypatch):
    for columns in (80, 120):
        lines = _jobs_output(monkeypatch, columns).splitlines()
        assert len(lines) == 3, lines  # the header and one line per upload
        assert all(len(line) <= columns for line in lines), [len(line) for line in lines]
        failed = next(line for line in lines if "FAILED" in line)
        assert "the se" in failed and failed.rstrip().endswith("…") and "THE END" not in failed
        assert "incoming/a-long-dataset-name.jsonl#7" in failed and "123456" in failed
        assert ("gemini-2.5-flash" in failed) == (
            columns >= 120
        )  # the model gives way on a narrow terminal


def test_jobs_cuts_a_long_dataset_name_from_the_left_keeping_its_file_name(monkeypatch):
    from typer.testing import CliRunner

    import autotune.cli.uploads as uploads_cli
    from autotune.cli import app

    deep = record("incoming/" + "nested/" * 12 + "the-file.jsonl", "9", "k9", job=JOB)

    class Bucket:
        def records(self):
            return [deep]

        def fates(self, records):
            return []

    monkeypatch.setattr(uploads_cli, "connect_bucket", lambda state_dir: Bucket())
    result = CliRunner().invoke(app, ["jobs"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    [header, line] = result.output.splitlines()
    assert len(line) <= 80 and line.startswith("…") and "nested/the-file.jsonl#9" in line


def test_jobs_json_keeps_the_full_reason(monkeypatch):
    rows = json.loads(_jobs_output(monkeypatch, 80, "--json"))
    assert any(str(r.get("error") or "").endswith("THE END") for r in rows)


def test_cancel_of_a_dataset_promoted_meanwhile_says_so_and_fails(monkeypatch):
    """`autotune jobs cancel` read the dataset QUEUED; a status tick gave it a slot before the
    cancel's transaction: nothing was cancelled, and the command must not say it was."""
    from job_doubles import FakeTuningService, MemoryLedger, make_request, memory_pipeline
    from typer.testing import CliRunner

    from autotune.cli import app
    from autotune.cli import jobs as jobs_cli
    from autotune.jobs.pipeline import Pipeline
    from autotune.jobs.submit import submit_request
    from autotune.jobs.tick import status_tick

    class PromotedBeforeTheCancel(MemoryLedger):
        armed = False
        service: FakeTuningService
        pipeline: Pipeline

        def update(self, key, decide):
            if self.armed:
                self.armed = False
                self.service.succeed(next(iter(self.service.jobs)))
                status_tick(self.pipeline)  # the first job ends; the queued one takes its slot
            return super().update(key, decide)

    ledger = PromotedBeforeTheCancel()
    pipeline, _, service, _, _ = memory_pipeline(ledger)
    ledger.service, ledger.pipeline = service, pipeline
    submit_request(pipeline, make_request("incoming/first.jsonl", sha256="1" * 64))
    submit_request(pipeline, make_request("incoming/second.jsonl", sha256="2" * 64))
    monkeypatch.setattr(jobs_cli, "_pipeline", lambda state_dir: pipeline)
    ledger.armed = True
    result = CliRunner().invoke(app, ["cancel", "incoming/second.jsonl"])
    assert result.exit_code == 1, result.output
    assert "left the queue while being cancelled (now SUBMITTED)" in result.output
    assert "run the command again" in result.output
    assert "cancelled gs://" not in result.output
