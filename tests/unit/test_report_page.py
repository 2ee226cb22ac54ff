"""The HTML validation report: verdict first, summary with a proportional histogram, problems
grouped by code, everything from the dataset escaped, no example text, nothing external; and
the validate function writes it beside the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from intake_doubles import BUCKET, NOW, MemoryBus, MemoryStore

from autotune.config import PipelineConfig, TuningDefaults
from autotune.intake.ports import IntakeDeps
from autotune.intake.upload import process_upload
from autotune.report_page import html_report_name, page_view, render_report_page
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, validate_dataset

ROOT = Path(__file__).resolve().parents[2]
SECRET = "ZEBRA-7731-never-on-the-page"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


class Page(HTMLParser):
    """Every element, every attribute, and the text in document order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, dict]] = []
        self.chunks: list[str] = []
        self.body: list[str] = []  # the visible text: what comes after <body>, blanks dropped
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.chunks.append(data)
        if "body" in self.tags and data.strip():
            self.body.append(data.strip())

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def all(self, tag: str, cls: str | None = None) -> list[dict]:
        return [
            a
            for t, a in self.attrs
            if t == tag and (cls is None or cls in (a.get("class") or "").split())
        ]


def turn(role: str, text: str, **extra) -> dict:
    return {"role": role, "parts": [{"text": text}], **extra}


def example(i: int, words: int = 1) -> dict:
    return {
        "contents": [
            turn("user", f"{SECRET} question {i} " + "word " * words),
            turn("model", f"{SECRET} answer"),
        ]
    }


def lines(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def report_of(data: bytes, name: str = "gs://b/incoming/train.jsonl", epochs: int = 3) -> dict:
    return validate_dataset(
        DatasetSource(name, [data]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=epochs),
    ).to_dict()


def hostile_dataset() -> bytes:
    docs = [example(i) for i in range(30)]
    docs[3]["contents"][0][SCRIPT] = SECRET  # an unknown field named like a script element
    docs[4]["contents"][1]["parts"][0][IMG] = 1  # an unknown part field that closes an attribute
    docs[5]["contents"][1]["role"] = SCRIPT  # a role that is not one
    return lines(docs)


def test_field_names_and_values_from_the_dataset_stay_text() -> None:
    report = report_of(hostile_dataset(), name=f"gs://b/incoming/{SCRIPT}.jsonl")
    html = render_report_page(
        report,
        upload=f"gs://b/incoming/{IMG}.jsonl#12",
        report_uri=f"gs://b/reports/{SCRIPT}/12.json",
    )
    page = Page(html)
    assert "script" not in page.tags and "img" not in page.tags
    assert not any(name.startswith("on") for _, attrs in page.attrs for name in attrs)
    assert f"contents[0].{SCRIPT}" in page.text  # the field path, shown as text
    assert f"contents[1].parts[0].{IMG}" in page.text
    assert f"role is '{SCRIPT}'" in page.text
    assert (
        f"gs://b/incoming/{IMG}.jsonl#12" in page.text
        and f"gs://b/incoming/{SCRIPT}.jsonl" in page.text
    )
    assert (
        SCRIPT not in html and "<img" not in html
    )  # escaped in the source, not only harmless once parsed


def test_no_example_text_reaches_the_page() -> None:
    report = report_of(hostile_dataset())
    assert SECRET not in json.dumps(report)  # the JSON report holds none either
    assert SECRET not in render_report_page(report)


def test_the_page_needs_nothing_from_elsewhere() -> None:
    html = render_report_page(report_of(hostile_dataset()), upload="train.jsonl")
    page = Page(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert "@import" not in html and "url(" not in html
    for _, attrs in page.attrs:
        assert "src" not in attrs and "href" not in attrs
    assert page.tags.count("style") == 1 and page.tags[0] == "html"


def test_verdict_comes_first_then_summary_problems_and_media() -> None:
    invalid = Page(render_report_page(report_of(hostile_dataset())))
    assert invalid.body[0].startswith("INVALID: rejected")
    text = invalid.text
    order = [
        text.index(s)
        for s in (
            "INVALID: rejected",
            "Summary",
            "Tokens per example",
            "Cost estimate",
            "Problems",
            "Media",
        )
    ]
    assert order == sorted(order)
    valid = Page(render_report_page(report_of(lines([example(i) for i in range(120)]))))
    assert valid.body[0].startswith("VALID: accepted")
    assert "None found." in valid.text


def test_problems_are_grouped_by_code_with_lines_fields_and_how_many_more() -> None:
    docs = [example(i) for i in range(130)]
    for i in range(110):  # more than the 100 listed per code
        docs[i]["contents"][1]["role"] = "assistant"
    docs[120]["contents"][0]["parts"][0]["mystery"] = 1
    report = report_of(lines(docs) + b"{broken\n", name="train.jsonl")
    view = page_view(report)
    groups = {g["code"]: g for g in view["problems"]}
    assert [g["severity"] for g in view["problems"]] == sorted(
        (g["severity"] for g in view["problems"]), key=lambda s: s != "error"
    )
    roles = groups["invalid_role"]
    assert (roles["total"], len(roles["items"]), roles["more"]) == (110, 100, 10)
    assert roles["items"][0] == {
        "file": "train.jsonl",
        "line": 1,
        "field": "contents[1].role",
        "message": roles["items"][0]["message"],
    }
    assert groups["invalid_json"]["items"][0]["line"] == 131
    assert groups["unknown_field"]["items"][0]["field"] == "contents[0].parts[0].mystery"
    text = Page(render_report_page(report)).text
    assert text.count("invalid_role (error, 110)") == 1
    assert (
        "train.jsonl:1" in text
        and "train.jsonl:131" in text
        and "… and 10 more (counted, not listed)." in text
    )
    assert "unknown_field (warning, 1)" in text


def test_histogram_has_one_bar_per_bin_in_proportion_to_its_examples() -> None:
    docs = (
        [example(i, words=5) for i in range(40)]
        + [example(i, words=200) for i in range(10)]
        + [example(0, words=400)]
    )
    report = report_of(lines(docs))
    bins = report["stats"]["train"]["tokens"]["histogram"]
    assert sum(b["examples"] for b in bins) == 51
    assert all(a["to"] + 1 == b["from"] for a, b in zip(bins, bins[1:]))
    tokens = report["stats"]["train"]["tokens"]
    assert (bins[0]["from"], bins[-1]["to"]) == (tokens["min"], tokens["max"])
    page = Page(render_report_page(report))
    (svg,) = page.all("svg", "histogram")
    bars = page.all("rect", "bar")
    assert [int(b["data-examples"]) for b in bars] == [b["examples"] for b in bins]
    tallest = max(float(b["height"]) for b in bars)
    for bar, b in zip(bars, bins):
        assert float(bar["height"]) == pytest.approx(tallest * b["examples"] / 40, abs=0.01)
        assert float(bar["y"]) + float(bar["height"]) == pytest.approx(
            float(bars[0]["y"]) + float(bars[0]["height"])
        )
    assert float(svg["width"]) >= max(float(b["x"]) + float(b["width"]) for b in bars)
    assert "Examples per token range" in page.text


def test_summary_shows_tokens_billable_tokens_and_an_unknown_price() -> None:
    report = report_of(lines([example(i) for i in range(30)]), epochs=4)
    tokens = report["stats"]["train"]["tokens"]
    text = Page(render_report_page(report)).text
    assert f"{tokens['min']:,}" in text and f"{tokens['p95']:,}" in text
    cost = report["cost_estimate"]
    assert (
        f"{cost['billable_tokens']:,} billable tokens ({cost['training_tokens']:,} training tokens × 4 epochs)"
        in text
    )


def test_a_rejection_before_any_line_was_read_still_renders() -> None:
    doc = {
        "valid": False,
        "model": "gemini-3.5-flash",
        "files": {},
        "counts": {"invalid_manifest": 1},
        "errors": [
            {
                "file": None,
                "role": None,
                "line": None,
                "code": "invalid_manifest",
                "severity": "error",
                "field": None,
                "message": "gs://b/incoming/x.tuning.json: not JSON",
            }
        ],
        "totals": {"errors": 1, "warnings": 0},
        "stats": {},
        "cost_estimate": {},
    }
    text = Page(render_report_page(doc)).text
    assert (
        "No line was read" in text and "invalid_manifest (error, 1)" in text and "settings" in text
    )


def test_the_page_name_is_the_json_reports_with_html() -> None:
    assert (
        html_report_name("reports/incoming/a.jsonl/17.json") == "reports/incoming/a.jsonl/17.html"
    )
    with pytest.raises(ValueError, match="not a JSON report's name"):
        html_report_name("reports/incoming/a.jsonl/17.html")


@pytest.mark.parametrize("data", [lines([example(i) for i in range(20)]), b"{not json\n"])
def test_the_validate_function_writes_the_page_before_the_json_report(data: bytes) -> None:
    store, config = (
        MemoryStore(),
        PipelineConfig(
            project="p", bucket=BUCKET, defaults=TuningDefaults(model="gemini-3.5-flash", epochs=3)
        ),
    )
    bus = MemoryBus(store.effects)
    uploaded = store.put(f"incoming/{SCRIPT}.jsonl", data)
    deps = IntakeDeps(
        store=store,
        bus=bus,
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        now=lambda: NOW,
    )
    process_upload(uploaded, config, deps)
    json_name = f"reports/incoming/{SCRIPT}.jsonl/{uploaded.generation}.json"
    html_name = f"reports/incoming/{SCRIPT}.jsonl/{uploaded.generation}.html"
    written = [e for e in store.effects if e.startswith(("page ", "report "))]
    assert written == [f"page {html_name}", f"report {json_name}"]
    page = Page(store.pages[html_name].decode())
    report = json.loads(store.reports[json_name])
    assert "script" not in page.tags
    assert page.text.count("VALID: accepted" if report["valid"] else "INVALID: rejected") == 1
    assert f"gs://{BUCKET}/incoming/{SCRIPT}.jsonl#{uploaded.generation}" in page.text
    assert f"gs://{BUCKET}/{json_name}" in page.text


def test_the_page_and_its_template_engine_load_on_the_first_render_only() -> None:
    # (Flask, under functions-framework, imports Jinja2 itself; the page adds nothing at start.)
    code = (
        "import sys; sys.path.insert(0, 'functions/validate'); import main\n"
        "assert not any(m.startswith('autotune.report_page') for m in sys.modules), 'page loaded at start'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    alone = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, autotune.report_page; assert 'jinja2' not in sys.modules",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert alone.returncode == 0, alone.stderr


def test_histogram_bins_cover_min_to_max_for_large_counts_too() -> None:
    from autotune.validation.tokens import TokenHistogram

    histogram = TokenHistogram()
    for tokens in (5, 5, 6, 100, 4_000, 5_000, 70_000, 131_071):
        histogram.add(tokens)
    summary = histogram.summary()
    bins = summary["histogram"]
    assert len(bins) == 20 and sum(b["examples"] for b in bins) == 8
    assert (bins[0]["from"], bins[-1]["to"]) == (5, 131_071)
    assert all(a["to"] + 1 == b["from"] for a, b in zip(bins, bins[1:]))
    assert (
        bins[0]["to"] == 6_558 and bins[0]["examples"] == 6 and bins[-1]["examples"] == 1
    )  # width 6,554
    assert TokenHistogram().summary()["histogram"] == []


def test_a_code_holding_an_error_and_an_unconfirmed_limit_warning_is_grouped_as_an_error():
    """Two audio files in one example only warn (an unconfirmed limit), 31 images refuse: one code."""
    audio = [
        {"fileData": {"mimeType": "audio/mpeg", "fileUri": f"gs://b/{i}.mp3"}} for i in range(2)
    ]
    images = [
        {"fileData": {"mimeType": "image/png", "fileUri": f"gs://b/{i}.png"}} for i in range(31)
    ]
    rows = [
        {
            "contents": [
                {"role": "user", "parts": [*media, {"text": f"Q{i}"}]},
                {"role": "model", "parts": [{"text": "A"}]},
            ]
        }
        for i, media in enumerate([audio, images])
    ]
    rows += [
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"Q{i}"}]},
                {"role": "model", "parts": [{"text": "A"}]},
            ]
        }
        for i in range(2, 120)
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    report = validate_dataset(
        DatasetSource("t.jsonl", [data]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
    )
    [group] = [g for g in page_view(report.to_dict())["problems"] if g["code"] == "too_many_media"]
    assert group["severity"] == "error" and group["total"] == 2
