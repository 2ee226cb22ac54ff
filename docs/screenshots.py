"""Take the README's two screenshots, docs/dashboard.png and docs/report.png, from a local stack
of its own (the shipped examples uploaded; a quota of one job, so some wait in the queue):

    .venv/bin/python docs/screenshots.py

Needs what the browser tests need: Debian's Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from autotune_local.stack import options_with, start_stack

DOCS = Path(__file__).resolve().parent
EXAMPLES = DOCS.parent / "examples"
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
VIEWPORT = {"width": 1000, "height": 860}
UPLOADS = [
    "summarization.jsonl",
    "classification.jsonl",
    "extractive-qa.jsonl",
    "chat-persona.jsonl",
    "bad/broken-lines.jsonl",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        stack = start_stack(
            options_with(state_dir=Path(state_dir), job_seconds=20.0, tick_seconds=1.0)
        )
        try:
            for name in UPLOADS:
                stack.upload(EXAMPLES / name, f"incoming/{Path(name).name}")
                time.sleep(1.0)
            with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
                browser = playwright.chromium.launch_persistent_context(
                    profile,
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport=VIEWPORT,
                )
                page = browser.new_page()
                page.goto(stack.env["AUTOTUNE_DASHBOARD_URL"])
                # A moment with every kind of row: one ended, one running, some queued, one rejected.
                wanted = {"SUCCEEDED", "RUNNING", "QUEUED", "REJECTED"}
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    shown = {
                        row.get_attribute("data-state") for row in page.locator("tr.upload").all()
                    }
                    if wanted <= shown:
                        break
                    page.wait_for_timeout(500)
                page.wait_for_timeout(1000)
                page.screenshot(path=str(DOCS / "dashboard.png"))
                page.locator("tr.upload", has_text="classification.jsonl").locator(
                    "td.verdict .report a", has_text="HTML"
                ).click()
                page.wait_for_load_state()
                page.screenshot(path=str(DOCS / "report.png"))
                browser.close()
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
