"""`autotune upload --wait`: each uploaded dataset followed to its verdict, and with
`--until ended` its tuning to the end, through the bucket and the ledger (cli/uploads.Bucket),
wherever they are."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.cli.terminal import echo
from autotune.cli.uploads import Bucket, connect_bucket, report_summary

if TYPE_CHECKING:
    from autotune.jobs.lifecycle import LedgerRecord


class WaitTimedOut(TimeoutError):
    pass


def wait_for_verdict(
    bucket: Bucket, object_name: str, generation: str, *, timeout: float, poll: float = 1.0
) -> dict:
    """The report of that upload version, once the validate function has written it."""
    from autotune.intake.objects import report_object_name

    name = report_object_name(bucket.config.reports_prefix, object_name, generation)
    deadline = time.monotonic() + timeout
    while True:
        report = bucket.report(name)
        if report is not None:
            return report
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"no report for gs://{bucket.config.bucket}/{object_name}#{generation} within {timeout:.0f} s "
                f"(expected at gs://{bucket.config.bucket}/{name})"
            )
        time.sleep(poll)


def wait_for_end(
    bucket: Bucket,
    report_uri: str,
    *,
    timeout: float,
    poll: float = 2.0,
    on_change: Callable[[LedgerRecord], None] = lambda record: None,
) -> LedgerRecord:
    """The ledger record holding that report, once it has ended (succeeded, failed, cancelled, skipped)."""
    from autotune.jobs.lifecycle import ENDED_STATES

    deadline = time.monotonic() + timeout
    seen = None
    while True:
        record = next((r for r in bucket.records() if r.report_uri == report_uri), None)
        if record is not None and record.state != seen:
            seen = record.state
            on_change(record)
        if record is not None and record.state in ENDED_STATES:
            return record
        if time.monotonic() >= deadline:
            where = f"it is {record.state}" if record else "no ledger record holds it yet"
            raise WaitTimedOut(
                f"the dataset of {report_uri} did not end within {timeout:.0f} s ({where})"
            )
        time.sleep(poll)


# Exit statuses of `autotune upload --wait`.
EXIT_ACCEPTED, EXIT_REJECTED, EXIT_TIMED_OUT = 0, 1, 3


def follow_uploads(
    uploaded: list[tuple[str, str]], *, until: str, timeout: float, state_dir: Path | None
) -> int:
    """`upload --wait`: each uploaded dataset or manifest to its verdict (and with until="ended"
    its tuning to the end), printing the report's summary. 0: every one accepted (and, to the
    end, succeeded or skipped as already tuned); 1: any rejected (or failed, cancelled); 3: time ran out."""
    from autotune.intake.objects import classify

    bucket = connect_bucket(state_dir)
    config = bucket.config
    followed = [(n, g) for n, g in uploaded if classify(n, config.incoming_prefix)[0] != "ignored"]
    if not followed:
        echo(
            f"nothing to wait for: no upload is a dataset (.jsonl) or manifest (.tuning.json) under {config.incoming_prefix} "
            "outside a parts/ folder, so none gets a verdict",
            err=True,
        )
        return 2
    try:
        return _follow(bucket, followed, until=until, timeout=timeout)
    except KeyboardInterrupt:
        echo(
            "stopped waiting; the uploads go on in the pipeline (`autotune status NAME` tells where they are)",
            err=True,
        )
        return 130


def _follow(bucket: Bucket, followed: list[tuple[str, str]], *, until: str, timeout: float) -> int:
    from autotune.intake.objects import report_object_name
    from autotune.jobs.lifecycle import LedgerState

    config = bucket.config
    deadline = time.monotonic() + timeout
    status = EXIT_ACCEPTED
    for object_name, generation in followed:
        uri = f"gs://{config.bucket}/{object_name}#{generation}"
        echo(f"waiting for the verdict on {uri} ...")
        try:
            report = wait_for_verdict(
                bucket, object_name, generation, timeout=max(0.0, deadline - time.monotonic())
            )
        except WaitTimedOut as exc:
            echo(str(exc), err=True)
            return EXIT_TIMED_OUT
        report_uri = f"gs://{config.bucket}/{report_object_name(config.reports_prefix, object_name, generation)}"
        echo(report_summary(report, report_uri))
        if report.get("valid") is not True:
            status = EXIT_REJECTED
            continue
        if until != "ended":
            continue
        echo(f"following the tuning of {uri} to its end ...")
        try:
            record = wait_for_end(
                bucket,
                report_uri,
                timeout=max(0.0, deadline - time.monotonic()),
                on_change=lambda r: echo(
                    f"  {r.state}"
                    + (f"  {r.job_name}" if r.job_name else "")
                    + (f"  ({r.reason})" if r.reason else "")
                ),
            )
        except WaitTimedOut as exc:
            echo(str(exc), err=True)
            return EXIT_TIMED_OUT
        ending = [f"ended {record.state}"]
        for label, value in (
            ("job", record.job_name),
            ("tuned model", record.tuned_model),
            ("endpoint", record.endpoint),
            ("error", record.error),
            ("duplicate of", record.duplicate_of),
        ):
            if value:
                ending.append(f"{label} {value}")
        echo("  " + "; ".join(ending))
        if record.state not in (LedgerState.SUCCEEDED, LedgerState.SKIPPED):
            status = EXIT_REJECTED
    return status
