"""The report document: its JSON shape, per-code listing cap, statistics, cost, progress, and
the validator's import footprint."""

from __future__ import annotations

import json
import subprocess
import sys

from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, validate_dataset
from autotune.validation.codes import ErrorCode
from autotune.validation.tokens import TokenHistogram


def rows(n: int, text: str = "question") -> bytes:
    return b"".join(
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": f"{text} {i}"}]},
                    {"role": "model", "parts": [{"text": "answer"}]},
                ]
            }
        ).encode()
        + b"\n"
        for i in range(n)
    )


def test_json_document_has_the_documented_shape():
    report = validate_dataset(
        DatasetSource("gs://b/incoming/train.jsonl", [rows(120) + b"oops\n"]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=4),
        validation=DatasetSource("gs://b/incoming/val.jsonl", [rows(10, "held out")]),
    )
    doc = json.loads(report.to_json())
    assert set(doc) == {
        "valid",
        "model",
        "files",
        "errors",
        "counts",
        "totals",
        "stats",
        "cost_estimate",
    }
    assert doc["valid"] is False and doc["model"] == "gemini-3.5-flash"
    assert set(doc["files"]) == {"train", "validation"}
    train = doc["files"]["train"]
    assert (
        train["name"] == "gs://b/incoming/train.jsonl"
        and train["lines"] == 121
        and train["examples"] == 120
    )
    assert len(train["sha256"]) == 64 and train["format"] == "gemini"
    assert doc["errors"] == [
        {
            "file": "gs://b/incoming/train.jsonl",
            "role": "train",
            "line": 121,
            "code": "invalid_json",
            "severity": "error",
            "field": None,
            "message": doc["errors"][0]["message"],
        }
    ]
    assert doc["counts"] == {"invalid_json": 1}
    assert doc["totals"] == {"errors": 1, "warnings": 0}
    assert doc["stats"]["method"].startswith("heuristic")
    assert doc["stats"]["validation"]["tokens"]["examples"] == 10
    cost = doc["cost_estimate"]
    assert cost["epochs"] == 4 and cost["billable_tokens"] == 4 * cost["training_tokens"]
    assert cost["price_per_million_training_tokens"] is None and cost["estimated_cost"] is None
    assert (
        report.example_count == 120 and report.estimated_billable_tokens == cost["billable_tokens"]
    )
    assert report.error_count == 1 and report.warning_count == 0


def test_listing_is_capped_per_code_but_counts_are_complete():
    data = rows(20) + b"not json\n" * 250 + b"[1]\n" * 3
    report = validate_dataset(
        DatasetSource("t", [data]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
        max_listed_per_code=5,
    )
    assert report.counts["invalid_json"] == 250 and report.counts["not_an_object"] == 3
    listed = [i for i in report.errors if i.code == "invalid_json"]
    assert [i.line for i in listed] == [21, 22, 23, 24, 25]
    assert report.error_count == 253


def test_totals_count_every_issue_and_each_issue_names_its_file_path():
    report = validate_dataset(
        DatasetSource("gs://b/incoming/train.jsonl", [rows(20) + b"not json\n" * 250]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1, learning_rate_multiplier=-1),
        validation=DatasetSource("gs://b/incoming/held out.jsonl", [b"[1]\n" + rows(2, "held")]),
        max_listed_per_code=5,
    )
    doc = json.loads(report.to_json())
    severities = {code: ErrorCode(code).severity for code in doc["counts"]}
    assert doc["counts"]["invalid_json"] == 250 and "warning" in severities.values()
    errors = sum(n for code, n in doc["counts"].items() if severities[code] == "error")
    warnings = sum(n for code, n in doc["counts"].items() if severities[code] == "warning")
    assert doc["totals"] == {"errors": errors, "warnings": warnings} and errors >= 252
    by_code: dict[str, list] = {}
    for issue in doc["errors"]:
        by_code.setdefault(issue["code"], []).append(issue)
    assert {(i["file"], i["role"]) for i in by_code["invalid_json"]} == {
        ("gs://b/incoming/train.jsonl", "train")
    }
    assert [(i["file"], i["role"], i["line"]) for i in by_code["not_an_object"]] == [
        ("gs://b/incoming/held out.jsonl", "validation", 1)
    ]
    settings_issues = [i for i in doc["errors"] if i["field"] == "learning_rate_multiplier"]
    assert settings_issues and all(i["file"] is None and i["role"] is None for i in settings_issues)


def test_a_duplicate_names_the_line_it_repeats():
    data = rows(20) + rows(20).splitlines(keepends=True)[6]
    report = validate_dataset(
        DatasetSource("t", [data]), settings=TuningSettings(model="gemini-3.5-flash", epochs=1)
    )
    duplicate = [(i.line, i.message) for i in report.errors if i.code == "duplicate_example"]
    assert duplicate == [(21, "repeats line 7 byte for byte")]


def test_cost_uses_the_catalog_price_and_its_date():
    data = b"".join(
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "model", "content": "a"}]}
        ).encode()
        + b"\n"
        for i in range(20)
    )
    report = validate_dataset(
        DatasetSource("t", [data]), settings=TuningSettings(model="gemini-1.0-pro-002", epochs=2)
    )
    cost = report.cost_estimate
    assert cost["price_per_million_training_tokens"] == 0.0 and cost["estimated_cost"] == 0.0
    assert cost["price_read_on"] and "preview" in cost["note"]


def test_progress_reports_cumulative_bytes():
    seen: list[int] = []
    data = rows(30)
    validate_dataset(
        DatasetSource("t", [data[:100], data[100:]]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
        validation=DatasetSource("v", [data]),
        progress=seen.append,
    )
    assert seen == [100, len(data), 2 * len(data)]


def test_token_histogram_summary():
    h = TokenHistogram()
    for v in [5, 1, 3, 2, 4, 10_000, 20_000]:
        h.add(v)
    s = h.summary()
    assert (s["examples"], s["min"], s["max"], s["median"], s["total"]) == (7, 1, 20_000, 4, 30_015)
    assert abs(s["p95"] - 20_000) / 20_000 < 0.01


def test_unknown_model_still_checks_lines():
    report = validate_dataset(
        DatasetSource("t", [rows(20) + b"{\n"]), settings=TuningSettings(model="gemini-9", epochs=1)
    )
    assert report.counts == {"unsupported_model": 1, "invalid_json": 1, "few_examples": 1}
    assert report.cost_estimate["estimated_cost"] is None


def test_the_validator_imports_nothing_from_google():
    code = (
        "import sys; before = set(sys.modules); import autotune.validation; "
        "new = [m for m in set(sys.modules) - before if m.startswith('google')]; print(new)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
