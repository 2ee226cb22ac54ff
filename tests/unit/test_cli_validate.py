"""`autotune validate` and `autotune models`: exit codes, the text layout, one JSON document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotune.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()

VALID = {
    "classification.jsonl": "gemini-3.5-flash",
    "summarization.jsonl": "gemini-3.5-flash-lite",
    "extractive-qa.jsonl": "gemini-3.1-flash-lite",
    "chat-persona.jsonl": "gemini-3.5-flash",
    "multimodal.jsonl": "gemini-3.1-flash-lite",
}
BAD = {
    "bad/broken-lines.jsonl": (
        "gemini-3.5-flash",
        {
            "byte_order_mark",
            "crlf_line_endings",
            "invalid_json",
            "not_an_object",
            "blank_line",
            "invalid_utf8",
            "unknown_field",
            "duplicate_example",
        },
    ),
    "bad/conversation-shape.jsonl": (
        "gemini-3.5-flash",
        {
            "missing_contents",
            "empty_contents",
            "invalid_role",
            "roles_not_alternating",
            "first_turn_not_user",
            "last_turn_not_model",
            "missing_parts",
            "empty_parts",
            "invalid_part",
            "empty_text",
        },
    ),
    "bad/media.jsonl": (
        "gemini-3.5-flash",
        {"inline_data_unsupported", "unsupported_mime_type", "invalid_file_uri", "too_many_media"},
    ),
    "bad/legacy-shape.jsonl": (
        "gemini-1.0-pro-002",
        {"system_not_first", "empty_text", "missing_contents", "mixed_formats"},
    ),
    "bad/too-few.jsonl": ("gemini-1.5-flash-002", {"too_few_examples", "model_retired"}),
    "bad/video-and-functions.jsonl": (
        "gemini-3.5-flash",
        {
            "media_outside_user_turn",
            "invalid_video_metadata",
            "function_part_wrong_role",
            "invalid_tools",
            "invalid_media_resolution",
        },
    ),
}


def invoke(*args: str):
    return runner.invoke(app, ["validate", *args])


@pytest.mark.parametrize(("name", "model"), VALID.items())
def test_shipped_valid_examples_pass(name, model):
    result = invoke(str(EXAMPLES / name), "--model", model, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["valid"] and doc["files"]["train"]["examples"] >= 16
    assert set(doc["counts"]) <= {"few_examples"}


def test_a_retired_model_is_an_error_with_the_whole_report():
    """Exit 1 (invalid), not a usage error: the report still names every line problem."""
    result = invoke(
        str(EXAMPLES / "legacy-messages.jsonl"), "--model", "gemini-1.0-pro-002", "--json"
    )
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["valid"] is False and set(doc["counts"]) == {"model_retired", "few_examples"}
    result = invoke(
        str(EXAMPLES / "bad" / "video-and-functions.jsonl"), "--model", "gemini-2.5-flash", "--json"
    )
    counts = json.loads(result.stdout)["counts"]
    assert result.exit_code == 1 and {
        "model_retired",
        "function_calling_unsupported",
        "media_outside_user_turn",
    } <= set(counts)


@pytest.mark.parametrize(("name", "expected"), BAD.items())
def test_shipped_bad_examples_show_their_codes(name, expected):
    model, codes = expected
    result = invoke(str(EXAMPLES / name), "--model", model, "--json")
    assert result.exit_code == 1
    assert codes <= set(json.loads(result.stdout)["counts"])


def test_text_output_verdict_first_then_issues_grouped_by_code():
    path = EXAMPLES / "bad" / "broken-lines.jsonl"
    result = invoke(str(path), "--model", "gemini-3.5-flash")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("INVALID:")
    assert "invalid_json (error, 2)" in lines
    group = lines.index("invalid_json (error, 2)")
    assert (
        lines[group + 1]
        == f"  {path}:3: invalid_json: not valid JSON: the line ends before the JSON value is complete"
    )
    assert lines[group + 2].startswith(f"  {path}:7: invalid_json: ")


def test_json_is_exactly_one_document_on_stdout():
    """In a real process, so stdout holds only what the command printed there."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from autotune.cli import main; main()",
            "validate",
            str(EXAMPLES / "bad" / "media.jsonl"),
            "--model",
            "gemini-3.5-flash",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    doc, end = json.JSONDecoder().raw_decode(result.stdout)
    assert result.stdout[end:].strip() == "" and doc["valid"] is False


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "gemini-9-ultra"],
        ["--epochs", "three"],
        ["--epochs", "0"],
        ["--adapter-size", "16", "--model", "gemini-1.5-pro-002"],
        ["--learning-rate-multiplier", "-2"],
        ["--region", "us-west1", "--model", "gemini-3.5-flash"],
    ],
)
def test_usage_errors_exit_2(args):
    result = invoke(str(EXAMPLES / "classification.jsonl"), *args)
    assert result.exit_code == 2


def test_a_setting_refused_only_by_an_unconfirmed_fact_is_a_warning_not_a_usage_error():
    """gemini-3.5-flash-lite's regions are unconfirmed in the catalog: us-west1 is reported, and the
    dataset still passes (exit 0); the same region for gemini-3.5-flash is a usage error (above)."""
    result = invoke(
        str(EXAMPLES / "summarization.jsonl"),
        "--model",
        "gemini-3.5-flash-lite",
        "--region",
        "us-west1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    region = [i for i in doc["errors"] if i["code"] == "unsupported_region"]
    assert (
        doc["valid"]
        and [i["severity"] for i in region] == ["warning"]
        and "unconfirmed" in region[0]["message"]
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--model", "gemini-9-ultra"], "unsupported_model"),
        (["--epochs", "three"], "invalid_epochs"),
        (["--region", "us-west1"], "unsupported_region"),
        (["--no-such-flag"], "invalid_arguments"),
        (["--validation", "/nonexistent/val.jsonl"], "file_not_readable"),
    ],
)
@pytest.mark.parametrize(
    "entry", ["autotune.command", "autotune.cli"]
)  # the executable's fast parser, and typer's
def test_json_usage_errors_are_one_document_with_code_and_message(args, code, entry):
    """In a real process: stdout holds exactly one JSON document, exit code 2 as without --json."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from {entry} import main; main()",
            "validate",
            str(EXAMPLES / "classification.jsonl"),
            "--model",
            "gemini-3.5-flash",
            *args,
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr
    doc = json.loads(result.stdout)
    assert (
        doc["valid"] is False
        and doc["usage_error"]["code"] == code
        and doc["usage_error"]["message"]
    )


def test_missing_file_exits_2(tmp_path):
    assert invoke(str(tmp_path / "nope.jsonl")).exit_code == 2
    assert (
        invoke(
            str(EXAMPLES / "classification.jsonl"), "--validation", str(tmp_path / "nope.jsonl")
        ).exit_code
        == 2
    )


def test_unknown_model_message_lists_the_catalog():
    result = invoke(str(EXAMPLES / "classification.jsonl"), "--model", "gemini-9-ultra")
    assert "gemini-3.5-flash" in result.output and "unsupported_model" in result.output


def test_validation_file_and_settings_flags():
    result = invoke(
        str(EXAMPLES / "chat-persona.jsonl"),
        "--validation",
        str(EXAMPLES / "extractive-qa.jsonl"),
        "--model",
        "gemini-3.5-flash",
        "--epochs",
        "5",
        "--adapter-size",
        "16",
        "--region",
        "europe-west4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["files"]["validation"]["examples"] == 16 and doc["cost_estimate"]["epochs"] == 5


def test_models_command_text_and_json():
    text = runner.invoke(app, ["models"])
    assert text.exit_code == 0 and "gemini-1.0-pro-002" in text.stdout
    doc = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert [m["name"] for m in doc["models"]][:3] == [
        "gemini-1.5-pro-002",
        "gemini-1.5-flash-002",
        "gemini-1.0-pro-002",
    ]
    assert doc["media"]["image"]["max_per_example"] == 30
    flash_lite = next(m for m in doc["models"] if m["name"] == "gemini-3.5-flash-lite")
    facts = {f["fact"]: f for f in flash_lite["facts"]}
    assert (
        facts["max_tokens_per_example"]["url"].startswith("https://")
        and facts["max_tokens_per_example"]["read_on"]
    )
    assert facts["function_calling"]["confirmed"] is False


def test_models_sources_lists_each_fact_with_its_page_and_marks_unconfirmed_ones():
    result = runner.invoke(app, ["models", "--sources"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "model gemini-3.5-flash-lite" in lines
    assert any(line.startswith("  max_seconds_by_resolution = {}  [UNCONFIRMED]") for line in lines)
    assert (
        "      source: https://github.com/googleapis/python-aiplatform/issues/6127 (read 2026-12-02)"
        in lines
    )


def test_text_output_lists_100_per_code_then_says_how_many_more(tmp_path):
    path = tmp_path / "many-bad.jsonl"
    path.write_bytes((EXAMPLES / "classification.jsonl").read_bytes() + b"not json\n" * 130)
    result = invoke(str(path), "--model", "gemini-3.5-flash")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "invalid_json (error, 130)" in lines
    assert sum(1 for line in lines if ": invalid_json: " in line) == 100
    assert "  ... and 30 more" in lines


def test_the_fast_parser_and_the_typer_command_take_the_same_options():
    """`autotune validate` is parsed without typer (start-up time); `--help` shows the typer
    declaration. The two must offer the same options."""
    import typer.core
    import typer.main

    from autotune.validate_command import FLAGS, OPTIONS

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.commands["validate"]
    declared = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    assert declared == set(OPTIONS) | set(FLAGS)


def test_the_executable_validates_without_importing_typer(tmp_path):
    code = (
        "import sys; from autotune.command import main\n"
        f"sys.argv = ['autotune', 'validate', {str(EXAMPLES / 'classification.jsonl')!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'typer' not in sys.modules and 'pydantic' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] is True


@pytest.mark.parametrize(
    "entry", ["autotune.command", "autotune.cli"]
)  # the executable's fast parser, and typer's
def test_html_writes_the_page_the_pipeline_stores(entry, tmp_path):
    page = tmp_path / "report.html"
    dataset = EXAMPLES / "bad" / "conversation-shape.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from {entry} import main; main()",
            "validate",
            str(dataset),
            "--model",
            "gemini-3.5-flash",
            "--json",
            "--html",
            str(page),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # --json still prints exactly one document
    from autotune.report_page import render_report_page

    assert page.read_text(encoding="utf-8") == render_report_page(report, upload=str(dataset))
    html = page.read_text(encoding="utf-8")
    assert "INVALID: rejected" in html and "invalid_role" in html and "<svg" in html


@pytest.mark.parametrize(
    ("where", "says"),
    [("missing-folder/report.html", "does not exist"), (".", "is a directory")],
)
def test_html_to_a_path_that_cannot_be_written_is_a_usage_error_before_validating(
    where, says, tmp_path
):
    result = invoke(
        str(EXAMPLES / "classification.jsonl"),
        "--model",
        "gemini-3.5-flash",
        "--json",
        "--html",
        str(tmp_path / where),
    )
    assert result.exit_code == 2
    doc = json.loads(result.stdout.splitlines()[-1])
    assert (
        doc["usage_error"]["code"] == "html_not_writable" and says in doc["usage_error"]["message"]
    )
    assert "--html" in doc["usage_error"]["message"]
