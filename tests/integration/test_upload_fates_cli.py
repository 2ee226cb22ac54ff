"""Every upload's fate through the real commands, against the local stack: a rejected upload is
waited for, shown by `status` and `jobs` and its report printed by `report`; a folder goes up
with its relative paths and is followed to its job's end; ignored files are listed as such."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_data import conversation_dataset, unique
from typer.testing import CliRunner

from autotune.cli import app

pytestmark = pytest.mark.integration

WAIT = "180"  # seconds: generous, the machine is shared; nothing here measures speed


@pytest.fixture(scope="module")
def stack(local_stack):
    return local_stack


def run(stack, *args: str, columns: int = 80):
    result = CliRunner().invoke(
        app, [*args, "--state-dir", str(stack.state_dir)], env={"COLUMNS": str(columns)}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def rejected_dataset(tag: str) -> bytes:
    good = conversation_dataset(tag, 18)
    return (
        good + b'{"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}\n' + b"not json\n"
    )


def test_a_rejected_upload_is_waited_for_listed_shown_and_its_report_printed(
    stack, tmp_path: Path
) -> None:
    name = unique("rejected") + ".jsonl"
    path = tmp_path / name
    path.write_bytes(rejected_dataset(name))

    waited = run(stack, "upload", str(path), "--wait", "--timeout", WAIT)
    assert waited.exit_code == 1, waited.output
    assert "REJECTED: 2 error(s)" in waited.output  # invalid_role, invalid_json
    assert "invalid_json" in waited.output and f"reports/incoming/{name}/" in waited.output

    shown = run(stack, "status", name)
    assert shown.exit_code == 0, shown.output
    assert "REJECTED" in shown.output and "errors:       2" in shown.output
    assert f"gs://{stack.bucket}/reports/incoming/{name}/" in shown.output

    listed = run(stack, "jobs", "--json")
    assert listed.exit_code == 0, listed.output
    [entry] = [
        e
        for e in json.loads(listed.output)
        if e["dataset_uri"] == f"gs://{stack.bucket}/incoming/{name}"
    ]
    assert (entry["state"], entry["verdict"], entry["error_count"]) == ("REJECTED", "rejected", 2)
    # Wide enough for the whole name: at 80 columns the table cuts names from the left (tested in
    # tests/unit/test_job_cli.py), and this shared stack's other rows set the column widths.
    table = run(stack, "jobs", columns=250)
    assert f"incoming/{name}" in table.output and "REJECTED" in table.output

    text = run(stack, "report", name)
    assert text.exit_code == 0, text.output
    assert text.output.startswith("INVALID (rejected)")
    assert "invalid_role (error, 1)" in text.output and ":20: invalid_json" in text.output
    as_json = run(stack, "report", f"gs://{stack.bucket}/incoming/{name}", "--json")
    stored = (
        stack.storage_client()
        .bucket(stack.bucket)
        .get_blob(entry["report_uri"].split("/", 3)[3])
        .download_as_bytes()
    )
    assert json.loads(as_json.output) == json.loads(stored)
    html = run(stack, "report", name, "--html")
    page_name = entry["report_uri"].split("/", 3)[3].removesuffix(".json") + ".html"
    stored_page = (
        stack.storage_client().bucket(stack.bucket).get_blob(page_name).download_as_bytes()
    )
    assert (
        html.exit_code == 0
        and html.output == stored_page.decode()
        and "INVALID: rejected" in html.output
    )


def test_a_folder_goes_up_with_its_paths_and_is_followed_to_the_end(stack, tmp_path: Path) -> None:
    folder = tmp_path / unique("bundle")
    (folder / "notes").mkdir(parents=True)
    (folder / "train.jsonl").write_bytes(conversation_dataset(folder.name))
    (folder / "notes" / "readme.txt").write_text("what this dataset is")

    followed = run(
        stack, "upload", str(folder), "--until", "ended", "--epochs", "2", "--timeout", WAIT
    )
    assert followed.exit_code == 0, followed.output
    assert (
        f"uploaded gs://{stack.bucket}/incoming/{folder.name}/notes/readme.txt" in followed.output
    )
    assert f"uploaded gs://{stack.bucket}/incoming/{folder.name}/train.jsonl" in followed.output
    assert (
        "ACCEPTED: 0 error(s)" in followed.output
        and "ended SUCCEEDED" in followed.output
        and "tuned model" in followed.output
    )

    ignored = run(stack, "status", f"incoming/{folder.name}/notes/readme.txt")
    assert (
        ignored.exit_code == 0 and "IGNORED" in ignored.output and "not a dataset" in ignored.output
    )
    done = run(stack, "status", f"incoming/{folder.name}/train.jsonl")
    assert "SUCCEEDED" in done.output


def test_waiting_on_uploads_that_never_get_a_verdict_is_refused(stack, tmp_path: Path) -> None:
    path = tmp_path / f"{unique('notes')}.txt"
    path.write_text("not a dataset")
    result = run(stack, "upload", str(path), "--wait")
    assert result.exit_code == 2 and "nothing to wait for" in result.output


def test_a_name_nothing_matches(stack) -> None:
    assert run(stack, "status", f"{unique('never')}.jsonl").exit_code == 1
    missing = run(stack, "report", f"{unique('never')}.jsonl")
    assert missing.exit_code == 1 and "no stored report matches" in missing.output


def test_status_answers_for_the_newest_version_even_when_the_ledger_holds_an_older_one(
    stack, tmp_path: Path
) -> None:
    name = unique("replaced") + ".jsonl"
    path = tmp_path / name
    path.write_bytes(conversation_dataset(name))
    first = run(stack, "upload", str(path), "--wait", "--timeout", WAIT)
    assert first.exit_code == 0, first.output
    path.write_bytes(rejected_dataset(name))
    second = run(stack, "upload", str(path), "--wait", "--timeout", WAIT)
    assert second.exit_code == 1, second.output

    latest = run(stack, "status", name)
    assert "REJECTED" in latest.output and "errors:       2" in latest.output
    first_generation = first.output.split("(generation ", 1)[1].split(")", 1)[0]
    older = run(stack, "status", f"gs://{stack.bucket}/incoming/{name}#{first_generation}")
    assert "ledger key:" in older.output and "REJECTED" not in older.output
    listed = [
        e
        for e in json.loads(run(stack, "jobs", "--json").output)
        if e["dataset_uri"] == f"gs://{stack.bucket}/incoming/{name}"
    ]
    assert len(listed) == 2 and {e.get("verdict") for e in listed} == {None, "rejected"}
