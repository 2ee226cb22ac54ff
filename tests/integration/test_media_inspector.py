"""GcsMediaInspector and `autotune validate --check-files` against fake-gcs-server, through the
real google-cloud-storage client."""

from __future__ import annotations

import json
import os
import struct
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
        local_stack.upload(
            image,
            f"media/{image.name}",
            content_type="image/png" if image.suffix == ".png" else "image/jpeg",
        )
    return local_stack


def test_stat_reports_sizes_and_missing_objects(media_bucket):
    bucket = media_bucket.bucket
    inspector = GcsMediaInspector(media_bucket.storage_client())
    present = f"gs://{bucket}/media/red-circle.png"
    missing = f"gs://{bucket}/media/no-such-file.png"
    elsewhere = "gs://a-bucket-that-does-not-exist-here/x.png"
    sizes = inspector.stat([present, missing, elsewhere, present, "https://example.com/a.png"])
    assert sizes == {
        present: (MEDIA / "red-circle.png").stat().st_size,
        missing: None,
        elsewhere: None,
    }


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
    argv = [
        sys.executable,
        "-c",
        "from autotune.cli import main; main()",
        "validate",
        "--model",
        "gemini-3.5-flash",
        "--check-files",
        "--json",
    ]
    ok = subprocess.run([*argv, str(good)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["stats"]["media"] == {
        "references": 16,
        "distinct_objects": 16,
        "checked": True,
        "video_durations_read": 0,
    }

    missing = subprocess.run([*argv, str(bad)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert missing.returncode == 1
    errors = json.loads(missing.stdout)["errors"]
    assert [(e["code"], e["line"]) for e in errors if e["code"] == "file_not_found"] == [
        ("file_not_found", 4)
    ]


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _mp4(seconds: int, *, media: int, moov_first: bool = True) -> bytes:
    """ftyp + moov (a version-0 mvhd at 1,000 units a second) + mdat of `media` zero bytes."""
    mvhd = _box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, seconds * 1000) + bytes(80))
    moov = _box(b"moov", mvhd + _box(b"trak", b""))
    mdat = _box(b"mdat", bytes(media))
    return _box(b"ftyp", b"isom\0\0\2\0isomavc1") + (moov + mdat if moov_first else mdat + moov)


@pytest.fixture(scope="module")
def video_bucket(local_stack):
    videos = {
        "short.mp4": _mp4(42, media=2048),
        "long.mp4": _mp4(
            400, media=300_000, moov_first=False
        ),  # the header 300 kB in: ranged reads
        "cut.mp4": _mp4(42, media=300_000, moov_first=False)[:200_000],  # an upload cut short
    }
    for name, data in videos.items():
        local_stack.upload(data, f"media/video/{name}", content_type="video/mp4")
    return local_stack, {name: len(data) for name, data in videos.items()}


def test_durations_come_from_the_headers_of_the_stored_videos(video_bucket):
    stack, sizes = video_bucket
    inspector = GcsMediaInspector(stack.storage_client())
    uri = {name: f"gs://{stack.bucket}/media/video/{name}" for name in sizes}
    found = inspector.durations({uri[name]: ("video/mp4", size) for name, size in sizes.items()})
    assert found[uri["short.mp4"]] == 42 and found[uri["long.mp4"]] == 400
    assert "truncated" in str(found[uri["cut.mp4"]])


def test_cli_check_files_reports_a_long_and_an_unreadable_video_by_line(video_bucket, tmp_path):
    stack, _ = video_bucket

    def row(i: int, name: str) -> str:
        return json.dumps(
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "fileData": {
                                    "mimeType": "video/mp4",
                                    "fileUri": f"gs://{stack.bucket}/media/video/{name}",
                                }
                            },
                            {"text": f"What happens in clip {i}?"},
                        ],
                    },
                    {"role": "model", "parts": [{"text": f"Answer {i}."}]},
                ],
                "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"},
            }
        )

    lines = [row(1, "long.mp4"), row(2, "cut.mp4")] + [row(10 + i, "short.mp4") for i in range(20)]
    dataset = tmp_path / "videos.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    argv = [
        sys.executable,
        "-c",
        "from autotune.cli import main; main()",
        "validate",
        "--model",
        "gemini-3.5-flash",
        "--check-files",
        "--json",
        str(dataset),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, **stack.env}, cwd=ROOT
    )
    assert done.returncode == 0, (
        done.stdout + done.stderr
    )  # warnings only: 1 of 22 examples dropped
    report = json.loads(done.stdout)
    found = {
        (e["code"], e["line"], e["field"])
        for e in report["errors"]
        if e["code"].startswith(("media_too", "video_"))
    }
    field = "contents[0].parts[0].fileData.fileUri"
    assert found == {("media_too_long", 1, field), ("video_duration_unreadable", 2, field)}
    assert report["stats"]["media"]["video_durations_read"] == 2
