"""The live pipeline page in a real browser: Debian's Chromium, headless, driven by Playwright,
against the local stack. Uploads appear and move through their states without a reload, a
rejected upload's report opens from its row, and hostile names stay text (no dialog ever fires).
Screenshots land in test-artifacts/screenshots/ (gitignored) for a person to look at.

No browser is downloaded: the tests use /usr/bin/chromium (.ci/run installs it with apt-get).
Without it they skip, except in CI (CI=true), where its absence fails.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sample_data import conversation_dataset, unique

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1000, "height": 760}
WAIT = 150.0  # seconds: generous, the machine is shared; nothing here measures speed
HOSTILE_NAME = "incoming/<script>alert(1)</script>.jsonl"
HOSTILE_FIELD = "<script>alert(3)</script>"
# The order a dataset's state can take on the page (QUEUED only while the quota is full).
STATE_ORDER = [
    "VALIDATING",
    "ACCEPTED",
    "QUEUED",
    "SUBMITTING",
    "SUBMITTED",
    "RUNNING",
    "SUCCEEDED",
]


@pytest.fixture(scope="module")
def stack(local_stack):
    return local_stack


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium), as .ci/run does"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, stack):
    page = browser.new_page()
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.dialogs = dialogs
    page.goto(stack.env["AUTOTUNE_DASHBOARD_URL"])
    yield page
    assert dialogs == [], f"a dialog fired: {dialogs}"
    page.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def upload_row(page, object_name: str, generation: int):
    """The row of that upload version, found by the data attributes the page sets from its JSON."""
    return (
        page.locator("tr.upload")
        .filter(has=page.locator("td.name", has_text=object_name))
        .filter(has_text=f"#{generation}")
    )


def wait_state(page, row, wanted: set[str], timeout: float = WAIT) -> list[str]:
    """The states the row showed, in order, until one of `wanted`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = row.get_attribute("data-state", timeout=1000) if row.count() == 1 else None
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if state in wanted:
            return seen
        page.wait_for_timeout(200)
    raise AssertionError(
        f"the row never showed {sorted(wanted)} within {timeout:.0f} s; it showed {seen}"
    )


def rejected_dataset(tag: str) -> bytes:
    return (
        conversation_dataset(tag, 18)
        + b'{"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}\n'
        + b"not json\n"
    )


def test_an_upload_appears_and_moves_through_its_states_to_succeeded_without_a_reload(
    stack, page
) -> None:
    page.evaluate("window.loadedOnce = true")
    name = f"incoming/{unique('browser-good')}.jsonl"
    generation = stack.upload(conversation_dataset(name), name)
    row = upload_row(page, name, generation)

    seen = wait_state(page, row, {"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED"})
    assert seen[-1] == "SUCCEEDED", seen
    assert len(seen) >= 2, f"the row appeared already ended: {seen}"
    assert all(state in STATE_ORDER for state in seen), seen
    assert page.evaluate("window.loadedOnce") is True  # the page updated itself: no reload
    assert row.locator(".tuned-model").inner_text().strip() != ""
    assert row.locator(".endpoint").inner_text().strip() != ""
    times = row.locator("td.times").inner_text()
    assert all(step in times for step in ("uploaded", "verdict", "submitted", "ended")), times
    assert row.locator("td.verdict .report a", has_text="JSON").count() == 1
    assert page.locator("#slots").inner_text().endswith(f"/ {stack.config.max_concurrent_jobs}")
    page.locator("#events tr.event", has_text=name).filter(has_text="job.succeeded").wait_for(
        timeout=10_000
    )
    screenshot(page, "dashboard-succeeded")

    # Its HTML report: the verdict first, then the token histogram drawn as SVG rectangles.
    row.locator("td.verdict .report a", has_text="HTML").click()
    page.wait_for_load_state()
    assert page.locator("body *").first.inner_text().startswith("VALID")
    bars = page.locator("svg.histogram rect.bar")
    assert bars.count() >= 1
    assert sum(int(bars.nth(i).get_attribute("data-examples")) for i in range(bars.count())) == 20
    assert bars.first.bounding_box()["height"] > 0  # drawn, not only present
    screenshot(page, "report-accepted")


def test_a_rejected_upload_shows_its_error_count_and_its_report(stack, page) -> None:
    name = f"incoming/{unique('browser-rejected')}.jsonl"
    generation = stack.upload(rejected_dataset(name), name)
    row = upload_row(page, name, generation)
    assert (
        wait_state(page, row, {"REJECTED", "SUCCEEDED", "SUBMITTED", "RUNNING"})[-1] == "REJECTED"
    )
    row.locator(".errors", has_text="2 error(s)").wait_for(timeout=10_000)
    screenshot(page, "dashboard-rejected")

    row.locator("td.verdict .report a", has_text="JSON").click()
    page.wait_for_load_state()
    report = json.loads(page.locator("body").inner_text())
    assert report["valid"] is False and {"invalid_role", "invalid_json"} <= set(report["counts"])
    screenshot(page, "report-json-rejected")

    page.go_back()
    upload_row(page, name, generation).locator("td.verdict .report a", has_text="HTML").click()
    page.wait_for_load_state()
    assert page.locator("#verdict").inner_text().startswith("INVALID")
    assert (
        page.locator("#code-invalid_json").count() == 1
        and page.locator("#code-invalid_role").count() == 1
    )
    screenshot(page, "report-rejected")


def test_hostile_object_and_field_names_stay_text(stack, page) -> None:
    lines = [
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"q{i}", HOSTILE_FIELD: "x"}]},
                {"role": "model", "parts": [{"text": f"a{i}"}]},
            ]
        }
        for i in range(20)
    ]
    # The unknown field is a warning; the line that is not JSON makes the upload rejected.
    data = "".join(json.dumps(line) + "\n" for line in lines).encode() + b"not json\n"
    generation = stack.upload(
        data, HOSTILE_NAME, metadata={"autotune-display-name": "<img src=x onerror=alert(2)>"}
    )
    row = upload_row(page, HOSTILE_NAME, generation)
    state = wait_state(page, row, {"REJECTED", "SUCCEEDED", "FAILED"})[-1]
    # Shown as the characters it is made of, in the page and in the event stream.
    assert HOSTILE_NAME in row.locator("td.name").inner_text()
    assert page.locator("tr.upload script, tr.event script, img").count() == 0
    assert state == "REJECTED"
    counted = re.fullmatch(
        r"(\d+) error\(s\), (\d+) warning\(s\)", row.locator(".errors").inner_text()
    )
    assert counted is not None
    errors, warnings = counted.groups()
    assert (
        int(errors) == 1 and int(warnings) >= 20
    )  # a warning per unknown field (and any other the report has)
    page.locator("#events tr.event").filter(has_text=HOSTILE_NAME).first.wait_for(timeout=15_000)
    screenshot(page, "dashboard-hostile-names")

    row.locator("td.verdict .report a", has_text="JSON").click()
    page.wait_for_load_state()
    report = json.loads(page.locator("body").inner_text())
    assert {issue["field"] for issue in report["errors"] if issue["code"] == "unknown_field"} == {
        f"contents[0].parts[0].{HOSTILE_FIELD}"
    }
    assert page.locator("script, img").count() == 0  # the JSON shown as text, nothing in it parsed

    page.go_back()
    upload_row(page, HOSTILE_NAME, generation).locator(
        "td.verdict .report a", has_text="HTML"
    ).click()
    page.wait_for_load_state()
    problems = page.locator("#problems")
    assert HOSTILE_FIELD in problems.inner_text()  # the field name as its characters
    assert HOSTILE_NAME in page.locator("body").inner_text()
    assert page.locator("script, img").count() == 0
    screenshot(page, "report-hostile-field-names")
    assert page.dialogs == []


def test_the_dashboard_answers_no_method_but_get(stack) -> None:
    import requests

    url = stack.env["AUTOTUNE_DASHBOARD_URL"]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("", "api/state", "report?name=reports/x/1.json"):
            response = requests.request(method, url + path, data=b"{}", timeout=10)
            assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD", (
                method,
                path,
            )
    assert requests.get(url + "api/state", timeout=10).json()["project"] == stack.project
