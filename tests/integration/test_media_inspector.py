"""GcsMediaInspector and `autotune validate --check-files` against fake-gcs-server, through the
real google-cloud-storage client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.adapters.media import GcsMediaInspector

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / "examples" / "media"


@pytest.fixture(scope="module")
def media_bucket(local_stack):
    """The example images, uploaded under media/ (not a dataset prefix, so nothing is tuned)."""
    for image in sorted(MEDIA.iterdir()):
        local_stack.upload(image, f"media/{image.name}", content_type="image/png" if image.suffix == ".png" else "image/jpeg")
    return local_stack


def test_stat_reports_sizes_and_missing_objects(media_bucket):
    bucket = media_bucket.bucket
    inspector = GcsMediaInspector(media_bucket.storage_client())
    present = f"gs://{bucket}/media/red-circle.png"
    missing = f"gs://{bucket}/media/no-such-file.png"
    elsewhere = "gs://a-bucket-that-does-not-exist-here/x.png"
    sizes = inspector.stat([present, missing, elsewhere, present, "https://example.com/a.png"])
    assert sizes == {present: (MEDIA / "red-circle.png").stat().st_size, missing: None, elsewhere: None}


def test_cli_check_files_finds_the_uploaded_media(media_bucket, tmp_path):
    dataset = (ROOT / "examples" / "multimodal.jsonl").read_text()
    dataset = dataset.replace("gs://autotune-datasets/", f"gs://{media_bucket.bucket}/")
    good = tmp_path / "multimodal.jsonl"
    good.write_text(dataset)
    lines = dataset.splitlines()
    lines[3] = lines[3].replace("/media/", "/media/gone-")
    bad = tmp_path / "multimodal-missing.jsonl"
    bad.write_text("\n".join(lines) + "\n")

    env = {**os.environ, **media_bucket.env}
    argv = [sys.executable, "-c", "from autotune.cli import main; main()", "validate", "--model", "gemini-3.5-flash",
            "--check-files", "--json"]
    ok = subprocess.run([*argv, str(good)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["stats"]["media"] == {"references": 16, "distinct_objects": 16, "checked": True}

    missing = subprocess.run([*argv, str(bad)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert missing.returncode == 1
    errors = json.loads(missing.stdout)["errors"]
    assert [(e["code"], e["line"]) for e in errors if e["code"] == "file_not_found"] == [("file_not_found", 4)]
