"""`autotune demo`: the README's main job, end to end on this machine.

Brings the stack up, listens on tuning-events, uploads the shipped examples (the multimodal
dataset's media first), follows every dataset to its end (rejected; or accepted, then its job
to SUCCEEDED/FAILED/CANCELLED, or skipped), prints what happened, and stops every process.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autotune.events import EventType, TuningEvent
from autotune_local.checkout import ROOT

EXAMPLES_DIR = ROOT / "examples"
DEMO_STATE_DIR = ROOT / ".autotune" / "demo"
END_TYPES = {
    EventType.DATASET_REJECTED,
    EventType.JOB_SUCCEEDED,
    EventType.JOB_FAILED,
    EventType.JOB_CANCELLED,
}
_SKIPPED = "autotune.job.v1.skipped"
SUMMARY_LISTED = 5  # problems per dataset in the closing summary


@dataclass(frozen=True)
class DemoDataset:
    label: str
    path: Path
    media_dir: Path | None = None  # the files its fileData URIs name, uploaded first


@dataclass
class Followed:
    dataset: DemoDataset
    object_name: str
    uri: str
    generation: int
    events: list[TuningEvent] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return any(e.type in END_TYPES or e.type.value == _SKIPPED for e in self.events)


def shipped_examples(examples_dir: Path = EXAMPLES_DIR) -> list[DemoDataset]:
    """The three the README promises, picked by name: a good text dataset, one with errors, a multimodal one."""
    wanted = [
        ("good text dataset", ("classification.jsonl", "summarization.jsonl")),
        ("dataset with errors", ("bad/conversation-shape.jsonl", "bad/broken-lines.jsonl")),
        ("multimodal dataset", ("multimodal.jsonl",)),
    ]
    found: list[DemoDataset] = []
    for label, names in wanted:
        path = next((examples_dir / n for n in names if (examples_dir / n).is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"the {label} is missing from {examples_dir} (looked for {', '.join(names)})"
            )
        media = next(
            (
                d
                for d in (path.parent / "media", path.parent / "images", examples_dir / "media")
                if d.is_dir()
            ),
            None,
        )
        found.append(DemoDataset(label, path, media if "multimodal" in label else None))
    return found


def run_demo(
    *,
    echo: Callable[[str], None] = print,
    timeout: float = 300.0,
    job_seconds: float = 8.0,
    state_dir: Path = DEMO_STATE_DIR,
) -> bool:
    """True when every dataset reached its end and no process was left behind."""
    from autotune_local.processes import group_pids
    from autotune_local.stack import options_with, start_stack

    datasets = shipped_examples()
    echo("starting the local stack (emulators, event bridge, tuning emulator, functions) ...")
    began = time.monotonic()
    stack = start_stack(
        options_with(state_dir=state_dir, job_seconds=job_seconds, tick_seconds=1.0)
    )
    try:
        echo(f"ready in {time.monotonic() - began:.1f} s; logs in {_relative(stack.log_dir)}/")
        listener = stack.listen_events("demo-listener")
        followed = []
        for dataset in datasets:
            if dataset.media_dir is not None:
                placed = media_objects(
                    dataset.path.read_text(encoding="utf-8"), dataset.media_dir, stack.bucket
                )
                for object_name, media in placed.items():
                    stack.upload(media, object_name)
                echo(
                    f"uploaded the {len(placed)} media files the {dataset.label} names, from {_relative(dataset.media_dir)}/"
                )
            object_name = f"{stack.config.incoming_prefix}{dataset.path.name}"
            generation = stack.upload(
                dataset.path.read_bytes(), object_name, content_type="application/jsonl"
            )
            uri = f"gs://{stack.bucket}/{object_name}"
            followed.append(Followed(dataset, object_name, uri, generation))
            echo(f"dropped the {dataset.label}: {_relative(dataset.path)} -> {uri}")
        by_uri = {f.uri: f for f in followed}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(f.finished for f in followed):
            for received in listener.poll(timeout=1.0):
                echo("  event " + describe_event(received.event))
                target = by_uri.get(received.event.subject)
                if target is not None:
                    target.events.append(received.event)
            dead = stack.dead_processes()
            if dead:
                echo(
                    "a part of the stack stopped: "
                    + ", ".join(f"{p.name} (see {p.log})" for p in dead)
                )
                break
        storage = stack.storage_client()
        echo("")
        echo("what happened:")
        for item in followed:
            for line in _summary(item, storage, stack.bucket):
                echo(line)
        unfinished = [f for f in followed if not f.finished]
        if unfinished:
            echo(
                f"not finished within {timeout:.0f} s: "
                + ", ".join(f.dataset.label for f in unfinished)
            )
        listener.close()
    finally:
        echo("stopping the local stack ...")
        stack.stop()
    left = [pid for proc in stack.processes for pid in group_pids(proc)]
    echo(f"stopped; processes left behind: {left}" if left else "stopped: no process left.")
    return not unfinished and not left


def describe_event(event: TuningEvent) -> str:
    p = event.payload
    parts = [event.type.value, f"{p.dataset_uri}#{p.generation}"]
    for label, value in (
        ("state", p.state),
        ("job", p.job_name),
        ("tuned_model", p.tuned_model),
        ("endpoint", p.endpoint),
        ("errors", p.error_count),
        ("warnings", p.warning_count),
        ("report", p.report_uri),
        ("reason", p.reason),
        ("error", p.error),
    ):
        if value not in (None, ""):
            parts.append(f"{label}={value}")
    return "  ".join(str(x) for x in parts)


def _summary(item: Followed, storage, bucket: str) -> list[str]:
    lines = [f"- {item.dataset.label} ({item.uri}):"]
    verdict = next(
        (
            e
            for e in item.events
            if e.type in (EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED)
        ),
        None,
    )
    if verdict is None:
        return lines + ["    no verdict received"]
    p = verdict.payload
    lines.append(
        f"    {verdict.type.value.rsplit('.', 1)[1]}: {p.error_count or 0} errors, {p.warning_count or 0} warnings; report {p.report_uri}"
    )
    lines += report_issue_lines(_read_report(storage, bucket, p.report_uri))
    for event in item.events:
        if event.type.value.startswith("autotune.job."):
            q = event.payload
            detail = ", ".join(
                f"{k} {v}"
                for k, v in (
                    ("job", q.job_name),
                    ("tuned model", q.tuned_model),
                    ("endpoint", q.endpoint),
                    ("reason", q.reason),
                    ("error", q.error),
                )
                if v
            )
            lines.append(
                f"    job {event.type.value.rsplit('.', 1)[1]}" + (f": {detail}" if detail else "")
            )
    return lines


def report_issue_lines(report: dict | None, listed: int = SUMMARY_LISTED) -> list[str]:
    """The first `listed` problems of a stored report (errors first), then how many it did not
    list: the report's totals, or its per-code counts for a report stored without totals."""
    issues = sorted((report or {}).get("errors", []), key=lambda i: i.get("severity") != "error")
    lines = []
    for issue in issues[:listed]:
        where = (
            f"line {issue['line']}"
            if issue.get("line")
            else "whole file"
            if issue.get("file")
            else "settings"
        )
        lines.append(
            f"      {issue['severity']} {issue['code']} ({where}): {issue['message'][:160]}"
        )
    totals = (report or {}).get("totals") or {}
    if totals:
        total = int(totals.get("errors") or 0) + int(totals.get("warnings") or 0)
    else:
        total = sum(n for n in ((report or {}).get("counts") or {}).values() if isinstance(n, int))
    unlisted = total - len(lines)
    if unlisted > 0:
        lines.append(
            f"      ... and {unlisted:,} more not listed here (the report above has every one)"
        )
    return lines


def _read_report(storage, bucket: str, report_uri: str | None) -> dict | None:
    prefix = f"gs://{bucket}/"
    if not report_uri or not report_uri.startswith(prefix):
        return None
    blob = storage.bucket(bucket).blob(report_uri[len(prefix) :])
    try:
        return json.loads(blob.download_as_bytes())
    except Exception:  # the summary goes on without the detail
        return None


def media_objects(dataset_text: str, media_dir: Path, bucket: str) -> dict[str, Path]:
    """object name -> local file, for every gs://BUCKET/... fileUri of the dataset found in media_dir
    by file name: the dataset is uploaded byte for byte as shipped, its media where it points."""
    placed = {}
    for named_bucket, object_name in re.findall(
        r'"fileUri":\s*"gs://([^/"]+)/([^"]+)"', dataset_text
    ):
        local = media_dir / Path(object_name).name
        if named_bucket == bucket and local.is_file():
            placed[object_name] = local
    return placed


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
