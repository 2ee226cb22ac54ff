"""Every upload's fate from a bucket listing and the ledger; what `autotune upload` sends where."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from google.api_core import exceptions as gexc

from autotune.cli.uploads import UploadPlanError, object_prefix, plan_uploads
from autotune.config import PipelineConfig
from autotune.intake.objects import StoredObject
from autotune.intake.reconciliation import ListedObject
from autotune.jobs.lifecycle import new_record
from autotune.upload_fates import (
    ACCEPTED,
    AWAITING,
    IGNORED,
    REJECTED,
    matches,
    parse_report_name,
    report_totals,
    upload_fates,
    with_report,
)

if TYPE_CHECKING:
    from autotune.adapters.storage import GcsDatasetStore

CONFIG = PipelineConfig(bucket="bkt")
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def listed(name: str, generation: str, minutes: int, **metadata: str) -> ListedObject:
    return ListedObject(
        StoredObject("bkt", name, generation, 10, metadata), T0 + timedelta(minutes=minutes)
    )


def report(name: str, generation: str, minutes: int, valid: str | None) -> ListedObject:
    return listed(
        f"reports/{name}/{generation}.json",
        "9",
        minutes,
        **({"autotune-valid": valid} if valid else {}),
    )


def test_each_upload_version_gets_one_fate_oldest_first():
    uploads = [
        listed("incoming/good.jsonl", "2", 1),
        listed("incoming/bad.jsonl", "5", 3),
        listed("incoming/notes.txt", "3", 2),
        listed("incoming/new.jsonl", "4", 4),
        listed("incoming/team/parts/train.jsonl", "6", 5),
        listed("incoming/waiting.jsonl", "7", 6),
    ]
    reports = [
        report("incoming/good.jsonl", "2", 1, "true"),
        report("incoming/bad.jsonl", "1", 0, "false"),
        report("incoming/bad.jsonl", "5", 3, "false"),
        report("incoming/waiting.jsonl", "7", 6, "true"),
        report("incoming/new.jsonl", "4", 4, None),
        listed("reports/stray.txt", "1", 0),
    ]
    record = new_record(
        idempotency_key="k",
        content_key="c",
        dataset_uri="gs://bkt/incoming/good.jsonl",
        generation="2",
        now=T0,
        model="m",
        report_uri="gs://bkt/reports/incoming/good.jsonl/2.json",
    )
    fates = upload_fates(uploads, reports, [record], CONFIG)
    summary = [(f.object_name, f.generation, f.verdict, f.record is not None) for f in fates]
    assert summary == [
        (
            "incoming/bad.jsonl",
            "1",
            REJECTED,
            False,
        ),  # an earlier generation, replaced since: its report remains
        ("incoming/good.jsonl", "2", ACCEPTED, True),
        ("incoming/notes.txt", "3", IGNORED, False),
        ("incoming/bad.jsonl", "5", REJECTED, False),
        (
            "incoming/new.jsonl",
            "4",
            "",
            False,
        ),  # a report without the verdict metadata: read by the caller
        ("incoming/team/parts/train.jsonl", "6", IGNORED, False),
        ("incoming/waiting.jsonl", "7", ACCEPTED, False),  # accepted, not yet claimed by submit
    ]
    assert fates[3].report_uri == "gs://bkt/reports/incoming/bad.jsonl/5.json"
    assert "parts/" in fates[5].why and "not a dataset" in fates[2].why


def test_an_upload_without_a_report_awaits_its_verdict():
    [fate] = upload_fates([listed("incoming/a.tuning.json", "8", 0)], [], [], CONFIG)
    assert fate.verdict == AWAITING and fate.report_uri is None
    assert "reports/incoming/a.tuning.json/8.json" in fate.why


def test_report_names_that_are_not_reports():
    assert parse_report_name("reports/incoming/a.jsonl/12.json", "reports/") == (
        "incoming/a.jsonl",
        "12",
    )
    for name in (
        "reports/a.json",
        "reports/incoming/a.jsonl/x.json",
        "reports/incoming/a.jsonl/12.txt",
        "other/a/1.json",
    ):
        assert parse_report_name(name, "reports/") is None


def test_totals_count_every_occurrence_and_tell_warnings_from_errors():
    stored = {
        "valid": False,
        "model": "gemini-3.5-flash",
        "counts": {"invalid_json": 250, "few_examples": 1},
        "errors": [
            {"code": "invalid_json", "severity": "error"},
            {"code": "few_examples", "severity": "warning"},
        ],
    }
    assert report_totals(stored) == (250, 1)
    [fate] = upload_fates([], [report("incoming/x.jsonl", "3", 0, None)], [], CONFIG)
    completed = with_report(fate, stored)
    assert (completed.verdict, completed.error_count, completed.warning_count, completed.model) == (
        REJECTED,
        250,
        1,
        "gemini-3.5-flash",
    )
    assert with_report(fate, None) is fate


def test_an_upload_is_found_by_uri_object_file_name_or_version():
    [fate] = upload_fates([], [report("incoming/sub/x.jsonl", "3", 0, "false")], [], CONFIG)
    for query in (
        "gs://bkt/incoming/sub/x.jsonl",
        "incoming/sub/x.jsonl",
        "x.jsonl",
        "gs://bkt/incoming/sub/x.jsonl#3",
        "gs://bkt/reports/incoming/sub/x.jsonl/3.json",
    ):
        assert matches(fate, query), query
    assert not matches(fate, "sub/x.jsonl") and not matches(fate, "gs://bkt/incoming/sub/x.jsonl#4")


def test_folders_keep_their_name_and_inner_paths_and_manifests_go_last(tmp_path: Path):
    bundle = tmp_path / "bundle"
    (bundle / "parts").mkdir(parents=True)
    (bundle / "media").mkdir()
    (bundle / ".git").mkdir()
    for rel in (
        "support.tuning.json",
        "parts/train.jsonl",
        "media/a.png",
        ".git/config",
        ".DS_Store",
    ):
        (bundle / rel).write_text("x")
    single = tmp_path / "z.jsonl"
    single.write_text("x")
    plan = plan_uploads([single, bundle], "incoming/")
    assert [name for _, name in plan] == [
        "incoming/bundle/media/a.png",
        "incoming/bundle/parts/train.jsonl",
        "incoming/z.jsonl",
        "incoming/bundle/support.tuning.json",
    ]
    assert plan[0][0] == bundle / "media" / "a.png"


def test_upload_plans_that_cannot_be_carried_out(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jsonl").write_text("1")
    (tmp_path / "b" / "x.jsonl").write_text("2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UploadPlanError, match="would both be uploaded as incoming/x.jsonl"):
        plan_uploads([tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"], "incoming/")
    with pytest.raises(UploadPlanError, match="exactly one file"):
        plan_uploads(
            [tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"],
            "incoming/",
            "incoming/y.jsonl",
        )
    with pytest.raises(UploadPlanError, match="no such file"):
        plan_uploads([tmp_path / "missing.jsonl"], "incoming/")
    with pytest.raises(UploadPlanError, match="holds no file"):
        plan_uploads([tmp_path / "empty"], "incoming/")
    assert (
        plan_uploads([tmp_path / "a" / "x.jsonl"], "incoming/", "incoming/named.jsonl")[0][1]
        == "incoming/named.jsonl"
    )


def test_prefix_defaults_to_incoming_and_slash_is_the_root():
    assert object_prefix(None, "incoming/") == "incoming/"
    assert object_prefix("/", "incoming/") == "" and object_prefix("", "incoming/") == ""
    assert (
        object_prefix("media", "incoming/") == "media/"
        and object_prefix("/a/b/", "incoming/") == "a/b/"
    )


class UnlistableStore:
    """A bucket these credentials may not list (403), or that does not answer within the client's
    retries (RetryError, which is not a GoogleAPICallError), as Cloud Storage answers."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def list_objects(self, prefix):
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        gexc.Forbidden("storage.objects.list denied on incoming/"),
        gexc.RetryError("Timeout of 120.0s exceeded", gexc.ServiceUnavailable("unreachable")),
    ],
)
def test_a_bucket_that_cannot_be_listed_leaves_the_ledger_to_answer(capsys, error):
    from autotune.cli.uploads import Bucket

    # Bucket holds the Cloud Storage adapter; fates() only lists through it, which is all
    # this stand-in answers.
    bucket = Bucket(CONFIG, cast("GcsDatasetStore", UnlistableStore(error)), records=lambda: [])
    assert bucket.fates() == []
    assert "cannot list gs://bkt" in capsys.readouterr().err


def test_totals_count_each_issue_by_its_own_severity_when_one_code_holds_both():
    """A limit on an unconfirmed catalog fact is a warning under the same code as a confirmed one's
    error: the report's totals say how many of each, which the first listed issue cannot."""
    report = {
        "counts": {"too_many_media": 2},
        "totals": {"errors": 1, "warnings": 1},
        "errors": [
            {"code": "too_many_media", "severity": "warning"},
            {"code": "too_many_media", "severity": "error"},
        ],
    }
    assert report_totals(report) == (1, 1)
    older = {
        "counts": {"few_examples": 1, "blank_line": 2},
        "errors": [
            {"code": "few_examples", "severity": "warning"},
            {"code": "blank_line", "severity": "error"},
        ],
    }
    assert report_totals(older) == (2, 1)


def test_a_report_the_bucket_does_not_give_within_its_retries_is_a_clear_error(monkeypatch):
    from typer.testing import CliRunner

    import autotune.cli.uploads as uploads_cli
    from autotune.cli import app

    class UnreachableBucket:
        config = CONFIG

        def records(self):
            raise gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("down"))

    monkeypatch.setattr(uploads_cli, "connect_bucket", lambda state_dir: UnreachableBucket())
    result = CliRunner().invoke(app, ["report", "incoming/a.jsonl"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "cannot read the reports in gs://bkt" in result.output


@pytest.mark.parametrize(
    "error",
    [
        gexc.Forbidden("storage.objects.get denied"),
        gexc.RetryError("Timeout of 120.0s exceeded", gexc.ServiceUnavailable("unreachable")),
    ],
)
def test_a_report_that_cannot_be_read_is_listed_without_it(error):
    from autotune.cli.uploads import Bucket

    class UnreadableStore:
        def stat(self, name):
            raise error

    bucket = Bucket(CONFIG, cast("GcsDatasetStore", UnreadableStore()), records=lambda: [])
    assert bucket.report("reports/incoming/a.jsonl/1.json") is None
