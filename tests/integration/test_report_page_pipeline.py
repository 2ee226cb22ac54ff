"""The validate function writes the HTML report beside the JSON one in the local stack's bucket
(fake-gcs-server): text/html, self-contained, verdict first, hostile field names as text, no
example text; `autotune report --html` prints it."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from sample_data import unique
from typer.testing import CliRunner

from autotune.cli import app
from autotune.events import EventType

pytestmark = pytest.mark.integration

SECRET = "Quokka-Saffron-Secret"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


class Parsed(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.body: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        if "body" in self.tags and data.strip():
            self.body.append(data.strip())


def example(i: int) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": f"{SECRET} question {i}"}]},
            {"role": "model", "parts": [{"text": f"{SECRET} answer {i}"}]},
        ]
    }


@pytest.fixture(scope="module")
def events(local_stack):
    listener = local_stack.listen_events()
    yield listener
    listener.close()


def test_an_upload_gets_an_html_report_beside_its_json_report(local_stack, events) -> None:
    rows = [example(i) for i in range(20)]
    rows[2]["contents"][0][SCRIPT] = 1
    rows[3]["contents"][1]["parts"][0][IMG] = 1
    rows[6]["contents"][1]["role"] = "assistant"  # one error: rejected
    name = f"incoming/{unique('page')}.jsonl"
    generation = local_stack.upload(b"".join(json.dumps(r).encode() + b"\n" for r in rows), name)
    uri = f"gs://{local_stack.bucket}/{name}"
    received = events.wait_for(
        lambda r: (
            r.event.subject == uri
            and r.event.type in (EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED)
        ),
        timeout=60.0,
    )
    assert received.event.type is EventType.DATASET_REJECTED

    bucket = local_stack.storage_client().bucket(local_stack.bucket)
    json_name = f"reports/{name}/{generation}.json"
    assert received.event.payload.report_uri == f"gs://{local_stack.bucket}/{json_name}"
    blob = bucket.get_blob(f"reports/{name}/{generation}.html")
    assert blob is not None, "no HTML report beside the JSON report"
    assert blob.content_type.startswith("text/html")
    html = blob.download_as_bytes().decode("utf-8")
    page = Parsed(html)
    assert page.body[0].startswith("INVALID: rejected")
    assert not {"script", "img", "link", "iframe"} & set(page.tags) and "svg" in page.tags
    text = " ".join(page.body)
    assert f"contents[0].{SCRIPT}" in text and f"contents[1].parts[0].{IMG}" in text
    assert "invalid_role" in text and f"{uri}:7" in text
    assert f"{uri}#{generation}" in text
    assert SECRET not in html

    shown = CliRunner().invoke(
        app, ["report", name, "--html", "--state-dir", str(local_stack.state_dir)]
    )
    assert shown.exit_code == 0, shown.output
    assert shown.output == html


def test_a_configured_price_reaches_the_stored_reports_in_dollars(make_local_stack) -> None:
    # A stack of its own: [prices] is deployment configuration (AUTOTUNE_PRICES in each function).
    stack = make_local_stack(prices={"gemini-3.5-flash": 1000.0})
    listener = stack.listen_events()
    try:
        name = f"incoming/{unique('priced')}.jsonl"
        generation = stack.upload(
            b"".join(json.dumps(example(i)).encode() + b"\n" for i in range(20)), name
        )
        uri = f"gs://{stack.bucket}/{name}"
        received = listener.wait_for(
            lambda r: r.event.subject == uri and r.event.type is EventType.DATASET_ACCEPTED,
            timeout=60.0,
        )
        assert received.event.payload.valid is True
    finally:
        listener.close()
    bucket = stack.storage_client().bucket(stack.bucket)
    cost = json.loads(bucket.blob(f"reports/{name}/{generation}.json").download_as_bytes())[
        "cost_estimate"
    ]
    assert (cost["price_source"], cost["price_per_million_training_tokens"]) == ("config", 1000.0)
    dollars = round(cost["billable_tokens"] * 1000.0 / 1e6, 2)
    assert cost["estimated_cost"] == dollars > 0
    html = bucket.blob(f"reports/{name}/{generation}.html").download_as_bytes().decode()
    assert f"about ${dollars:,.2f}</strong>" in html and "deploy/config.toml [prices]" in html
