"""The dashboard application over in-memory adapters: read-only, escaped, serving reports only."""

import json
import re
from pathlib import Path

import pytest
from intake_doubles import BUCKET, NOW, MemoryStore
from job_doubles import MemoryLedger

from autotune.config import PipelineConfig
from autotune.dashboard.app import create_app
from autotune.dashboard.source import PipelineReader

CONFIG = PipelineConfig(project="p", bucket=BUCKET)
HOSTILE = "incoming/<script>alert(1)</script>.jsonl"


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    upload = store.put(HOSTILE, b"{}\n", {"autotune-model": "<img src=x onerror=alert(2)>"})
    report = {
        "valid": False,
        "counts": {"invalid_field": 1},
        "errors": [{"code": "invalid_field", "severity": "error", "field": "contents[0].<script>"}],
    }
    store.put(
        f"reports/{HOSTILE}/{upload.generation}.json",
        json.dumps(report).encode(),
        {"autotune-valid": "false"},
    )
    return store


@pytest.fixture
def client(store):
    reader = PipelineReader(CONFIG, store, MemoryLedger(), None, clock=lambda: NOW)
    return create_app(reader).test_client()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(
    "path", ["/", "/api/state", "/report?name=reports/x/1.json", "/healthz", "/anything/else"]
)
def test_every_method_but_get_is_refused(client, store, method, path):
    before = dict(store.objects)
    response = client.open(path, method=method, data=b"{}")
    assert response.status_code == 405, (method, path)
    assert response.headers["Allow"] == "GET, HEAD"
    assert "read-only" in response.get_json()["error"]
    assert store.objects == before and store.effects == []


def test_the_page_shows_names_as_text_never_as_markup(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    # The data rides in a JSON block with <, > and & escaped; the one script carries the policy's nonce.
    found = re.search(
        r'<script type="application/json" id="initial-state">(.*?)</script>', page, re.S
    )
    assert found is not None
    initial = found.group(1)
    assert "\\u003cscript\\u003ealert(1)" in initial
    assert json.loads(initial)["uploads"][0]["object"] == HOSTILE
    policy = re.search(r"script-src 'nonce-([^']+)'", response.headers["Content-Security-Policy"])
    assert policy is not None
    nonce = policy.group(1)
    assert re.findall(r"<script nonce=\"([^\"]+)\">", page) == [nonce]
    assert "textContent" in page and "innerHTML" not in page


def test_the_json_endpoint_holds_the_rejected_upload_with_its_error_count_and_report_link(client):
    state = client.get("/api/state").get_json()
    [row] = state["uploads"]
    assert (row["object"], row["state"], row["errors"]) == (HOSTILE, "REJECTED", 1)
    report = client.get(row["report_json"])
    assert report.status_code == 200 and report.mimetype == "application/json"
    assert report.get_json()["errors"][0]["field"] == "contents[0].<script>"
    assert (
        "sandbox" in report.headers["Content-Security-Policy"]
        and "script-src" not in report.headers["Content-Security-Policy"]
    )


@pytest.mark.parametrize(
    "name", [HOSTILE, "reports/none.json", "reports/x/1.txt", "", "incoming/../reports/x.json"]
)
def test_only_stored_reports_are_served(client, name):
    assert client.get("/report", query_string={"name": name}).status_code == 404


def test_a_pipeline_that_cannot_be_read_is_said_so(store):
    class Broken(MemoryLedger):
        def records(self, states=None):
            raise ConnectionError("firestore is down")

    client = create_app(PipelineReader(CONFIG, store, Broken(), None)).test_client()
    state = client.get("/api/state")
    assert state.status_code == 503 and "firestore is down" in state.get_json()["error"]
    page = client.get("/")
    assert (
        page.status_code == 200
        and "cannot read the pipeline: ConnectionError: firestore is down"
        in page.get_data(as_text=True)
    )


def test_the_command_without_a_project_or_a_local_stack_says_what_to_give(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autotune.cli import app

    result = CliRunner().invoke(
        app, ["dashboard", "--state-dir", str(tmp_path)], env={"AUTOTUNE_PROJECT": ""}
    )
    assert result.exit_code == 2 and "--project" in result.output
