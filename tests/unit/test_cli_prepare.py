"""`autotune prepare` through the real command: each source format round-trips through
`autotune validate` for the chosen model; the split is the same on every run and within limits;
bad input is named and nothing half-written is left."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


RETIRED = {"gemini-2.5-flash", "gemini-1.0-pro-002", "gemini-1.5-flash-002"}


def assert_valid_but_for_retirement(*validate_args: str, model: str) -> None:
    """A retired model's data must still pass every rule: its only error is the retirement."""
    checked = run("validate", *validate_args, "--model", model, "--json")
    report = json.loads(checked.output)
    errors = {e["code"] for e in report["errors"] if e["severity"] == "error"}
    if model in RETIRED:
        assert checked.exit_code == 1 and errors == {"model_retired"}, checked.output
    else:
        assert checked.exit_code == 0 and not errors, checked.output


def openai_chat(path: Path, n: int = 40) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "system", "content": "You answer in one word."},
                            {"role": "user", "content": f"Which colour is item {i}?"},
                            {"role": "assistant", "content": ["red", "green", "blue"][i % 3]},
                        ]
                    }
                )
                + "\n"
            )
    return path


def pairs_csv(path: Path, n: int = 20) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "response", "system"])
        for i in range(n):
            writer.writerow(
                [f"Double {i},\nplease.", str(2 * i), "You do arithmetic." if i % 2 else ""]
            )
    return path


def pairs_jsonl(path: Path, n: int = 20) -> Path:
    path.write_text(
        "".join(json.dumps({"prompt": f"Echo {i}", "completion": f"{i}"}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("make", "model"),
    [
        (openai_chat, "gemini-3.5-flash"),
        (pairs_csv, "gemini-3.5-flash"),
        (pairs_jsonl, "gemini-2.5-flash"),
        (openai_chat, "gemini-1.0-pro-002"),
        (pairs_csv, "gemini-1.0-pro-002"),
    ],
)
def test_each_format_round_trips_through_validate(tmp_path: Path, make, model) -> None:
    source = make(tmp_path / ("data.csv" if make is pairs_csv else "data.jsonl"))
    out = tmp_path / "ready.jsonl"
    prepared = run("prepare", str(source), "--model", model, "-o", str(out))
    assert prepared.exit_code == 0, prepared.output
    assert (
        f"converted to {'legacy messages' if model == 'gemini-1.0-pro-002' else 'Gemini contents'} for {model}"
        in prepared.output
    )
    assert_valid_but_for_retirement(str(out), model=model)


def test_the_shipped_legacy_example_becomes_valid_gemini_data(tmp_path: Path) -> None:
    out = tmp_path / "legacy.jsonl"
    prepared = run(
        "prepare",
        str(ROOT / "examples" / "legacy-messages.jsonl"),
        "--model",
        "gemini-3.5-flash",
        "-o",
        str(out),
    )
    assert (
        prepared.exit_code == 0
        and "system message moved to systemInstruction (16 example(s))" in prepared.output
    )
    assert run("validate", str(out), "--model", "gemini-3.5-flash").exit_code == 0


def test_a_split_round_trips_and_is_the_same_on_every_run(tmp_path: Path) -> None:
    source = openai_chat(tmp_path / "chat.jsonl", 200)
    results = []
    for attempt in range(2):
        out = tmp_path / f"run{attempt}.jsonl"
        prepared = run(
            "prepare", str(source), "-o", str(out), "--validation-split", "0.2", "--json"
        )
        assert prepared.exit_code == 0, prepared.output
        summary = json.loads(prepared.output)
        validation = Path(summary["validation"]["output"])
        assert validation == tmp_path / f"run{attempt}.validation.jsonl"
        results.append((out.read_bytes(), validation.read_bytes()))
        checked = run("validate", str(out), "--validation", str(validation), "--json")
        assert checked.exit_code == 0, checked.output
        report = json.loads(checked.output)
        assert report["files"]["validation"]["examples"] == summary["validation"]["examples"] > 0
        assert (
            report["files"]["train"]["examples"] + report["files"]["validation"]["examples"] == 200
        )
    assert results[0] == results[1]


def test_the_split_is_cut_to_the_models_validation_limit(tmp_path: Path) -> None:
    source = pairs_jsonl(tmp_path / "many.jsonl", 1200)
    out = tmp_path / "out.jsonl"
    prepared = run(
        "prepare",
        str(source),
        "-o",
        str(out),
        "--model",
        "gemini-1.5-flash-002",
        "--validation-split",
        "0.5",
        "--json",
    )
    assert prepared.exit_code == 0, prepared.output
    split = json.loads(prepared.output)["validation"]
    assert split["examples"] == 256 and split["drawn_before_limits"] > 256
    assert_valid_but_for_retirement(
        str(out), "--validation", split["output"], model="gemini-1.5-flash-002"
    )


def test_lines_that_cannot_be_converted_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    source = openai_chat(tmp_path / "chat.jsonl", 20)
    with source.open("ab") as f:
        f.write(b'{"messages": [{"role": "tool", "content": "x"}]}\n')
        f.write(b"\xff\xfe not utf-8\n")
        f.write(b"{broken\n")
    out = tmp_path / "out.jsonl"
    refused = run("prepare", str(source), "-o", str(out))
    assert refused.exit_code == 1
    assert f"{source}:21: messages[0].role is 'tool'" in refused.output
    assert (
        f"{source}:22: not UTF-8" in refused.output
        and f"{source}:23: not valid JSON" in refused.output
    )
    assert "nothing written" in refused.output and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chat.jsonl"
    ]  # no partial file left behind
    kept = run("prepare", str(source), "-o", str(out), "--skip-unconvertible")
    assert kept.exit_code == 0 and "3 example(s) could not be converted" in kept.output
    assert len(out.read_text().splitlines()) == 20


def test_usage_errors(tmp_path: Path) -> None:
    source = pairs_jsonl(tmp_path / "p.jsonl")
    assert "unknown model" in run("prepare", str(source), "--model", "gemini-9").output
    assert run("prepare", str(source), "--model", "gemini-9").exit_code == 2
    same = run("prepare", str(source), "-o", str(source))
    assert same.exit_code == 2 and "is the input" in same.output
    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep me")
    refused = run("prepare", str(source), "-o", str(existing))
    assert (
        refused.exit_code == 2
        and "--overwrite" in refused.output
        and existing.read_text() == "keep me"
    )
    assert run("prepare", str(source), "-o", str(existing), "--overwrite").exit_code == 0
    assert run("prepare", str(source), "--validation-split", "1").exit_code == 2
    assert run("prepare", str(source), "-o", str(tmp_path / "missing" / "x.jsonl")).exit_code == 2
    bad_csv = tmp_path / "q.csv"
    bad_csv.write_text("question,answer\nq,a\n")
    header = run("prepare", str(bad_csv))
    assert (
        header.exit_code == 2
        and "prompt and response" in header.output
        and "question, answer" in header.output
    )


def test_a_csv_row_with_more_fields_than_the_header_is_named_with_its_lines(tmp_path: Path) -> None:
    source = pairs_csv(tmp_path / "p.csv", 16)
    with source.open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow(["q", "multi\nline", "s", "one too many"])
    refused = run("prepare", str(source), "-o", str(tmp_path / "o.jsonl"))
    assert refused.exit_code == 1
    assert "the row has 4 fields; the header names 3" in refused.output
    # Rows with quoted newlines span lines: the header is line 1, each earlier row two lines.
    assert f"{source}:34-35:" in refused.output
