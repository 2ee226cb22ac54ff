"""Load: N datasets dropped within seconds on the local stack, followed until every one has ended.

Starts a stack of its own (max_concurrent_jobs 4, a short job clock, a tick every second),
uploads N distinct valid datasets from a few threads at once, and while they drain samples the
tuning emulator and the ledger for the number of active jobs. Then it prints:

- time to drain (first upload to the last end event) and events per type;
- jobs created (asked of the tuning emulator: list jobs) and duplicates: jobs per idempotency
  label above one, datasets with more than one end, and events received more than once (same
  ce-id: allowed, subscribers drop them) counted apart from distinct events;
- lost datasets (uploaded, no end state) and ledger records not in an end state;
- the most active jobs seen at once (emulator) and slots held at once (ledger);
- datasets whose events arrived out of lifecycle order;
- p50/p95 of upload -> accepted and upload -> submitted (from the upload's return to the
  event's ce-time, the moment the pipeline decided; both clocks are this machine's).

    python bench/load.py [--datasets 200] [--max-jobs 4] [--job-seconds 5] [--tick-seconds 1]
                         [--rate-500 0.3 --rate-429 0.3]

With --rate-500 / --rate-429 the tuning emulator answers that share of all calls with 500 and of
job creations with 429 for the whole run: the figures then show what a service failing that
often for minutes costs (FAILED ends are allowed: a dataset gives up after 10 tries without an
answer and a lookup that shows no job of it; lost or doubled ones are not).

With --after-create N the first N job creations make their job and then fail to answer (500,
503, and a stall past the client's deadline, in turn); --list-lag S keeps new jobs out of lists for
S seconds and --create-delay S makes every create outlast the deadline by S seconds. The client's
deadline is --call-timeout (5 s) and a create without an answer is looked for again after
--create-settle (10 s) in those runs. The report adds the jobs cancelled as orphans (a second job
of one dataset, found and cancelled) and counts as duplicates only the second jobs left running.

With --overwrite-during-queue the run attacks the gate instead: each dataset is overwritten under
the same name right after its upload, while it is validated or waits in the queue (every other
one with 3 invalid lines, the rest with 25 valid examples instead of 20). It prints the versions
accepted, the jobs, and the jobs on unvalidated bytes: jobs whose tuning service example count
is not the count of the version their ledger record names (must be 0).

The integration test tests/integration/test_load_small.py runs the same code with a small N.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from autotune.events import EventType
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.lifecycle import ENDED_STATES

END_TYPES = frozenset(
    {
        EventType.DATASET_REJECTED,
        EventType.JOB_SUCCEEDED,
        EventType.JOB_FAILED,
        EventType.JOB_CANCELLED,
        EventType.JOB_SKIPPED,
    }
)
ACTIVE_JOB_STATES = frozenset({"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"})
# Where each event type sits in one dataset's life (queued may come back after a 429: same rank).
LIFECYCLE_RANK = {
    EventType.DATASET_ACCEPTED: 0,
    EventType.DATASET_REJECTED: 0,
    EventType.JOB_QUEUED: 1,
    EventType.JOB_SKIPPED: 1,
    EventType.JOB_SUBMITTED: 2,
    EventType.JOB_RUNNING: 3,
    EventType.JOB_SUCCEEDED: 4,
    EventType.JOB_FAILED: 4,
    EventType.JOB_CANCELLED: 4,
}


def dataset(tag: str, examples: int = 20) -> bytes:
    """A valid Gemini dataset whose bytes are its own (distinct content: no dataset is skipped)."""
    rows = (
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"Load {tag}: question {i}?"}]},
                {"role": "model", "parts": [{"text": f"Answer {i} for {tag}."}]},
            ]
        }
        for i in range(examples)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


@dataclass
class Figures:
    uploaded: int
    drain_seconds: float | None
    events_per_type: dict[str, int]
    events_received: int  # every message pulled, copies included
    distinct_events: int  # by ce-id
    jobs_created: int
    duplicate_jobs: int  # jobs beyond the first per idempotency label
    datasets_with_several_ends: int  # distinct end events (different ce-ids) for one dataset
    lost: list[str]  # uploaded, no end event
    unfinished_records: int  # ledger records not in an end state
    max_active_jobs: int  # seen on the tuning emulator
    max_slots_held: int  # seen in the ledger's slots document
    max_concurrent_jobs: int
    out_of_order: int  # datasets whose events arrived out of lifecycle order
    ce_time_out_of_order: (
        int  # datasets whose events' ce-time (decision time) contradicts the lifecycle
    )
    accepted_seconds: list[float] = field(default_factory=list)
    submitted_seconds: list[float] = field(default_factory=list)
    end_states: dict[str, int] = field(default_factory=dict)
    orphans_cancelled: int = 0  # second jobs of one dataset the pipeline found and cancelled
    duplicates_not_cancelled: int = (
        0  # second jobs of one dataset that were not cancelled: paid twice
    )

    @property
    def duplicate_event_copies(self) -> int:
        return self.events_received - self.distinct_events


class ActiveJobSampler:
    """Polls the tuning emulator and the ledger's slots document while the datasets drain."""

    def __init__(self, stack, interval: float = 0.2) -> None:
        from autotune.adapters.ledger import FirestoreLedger

        self.endpoint = stack.config.vertex_endpoint
        self.ledger = FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection)
        self.interval = interval
        self.max_active = self.max_slots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ActiveJobSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = requests.get(f"{self.endpoint}/emulator/state", timeout=10).json()["jobs"]
                self.max_active = max(
                    self.max_active,
                    sum(n for state, n in jobs.items() if state in ACTIVE_JOB_STATES),
                )
                self.max_slots = max(self.max_slots, len(self.ledger.slots().active))
            except (requests.RequestException, ValueError, KeyError):
                pass  # a missed sample is not a finding; the next one comes shortly
            self._stop.wait(self.interval)


class EventCollector:
    """Pulls tuning-events on a thread of its own, noting when each message arrived."""

    def __init__(self, listener) -> None:
        self.listener = listener
        self.arrivals: list[tuple[float, object]] = []  # (time.time(), ReceivedEvent)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EventCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            fresh = self.listener.poll(timeout=1.0)
            now = time.time()
            with self._lock:
                self.arrivals.extend((now, r) for r in fresh)

    def snapshot(self) -> list:
        with self._lock:
            return [r for _, r in self.arrivals]


def drop(stack, count: int, run_tag: str, workers: int = 8) -> dict[str, float]:
    """Upload `count` datasets at once; object URI -> time.time() when its upload returned."""
    names = [f"incoming/load-{run_tag}/{i:04d}.jsonl" for i in range(count)]
    client = stack.storage_client()
    bucket = client.bucket(stack.bucket)

    def upload(name: str) -> tuple[str, float]:
        bucket.blob(name).upload_from_string(
            dataset(f"{run_tag}-{name}"), content_type="application/jsonl"
        )
        return f"gs://{stack.bucket}/{name}", time.time()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(upload, names))


def wait_until_drained(
    collector: EventCollector, uris: set[str], timeout: float, progress=None
) -> None:
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        ended = {r.event.subject for r in collector.snapshot() if r.event.type in END_TYPES} & uris
        if len(ended) == len(uris):
            return
        if progress and time.monotonic() - last_report > 15:
            progress(f"  {len(ended)} of {len(uris)} datasets ended")
            last_report = time.monotonic()
        time.sleep(0.5)


def run_load(stack, count: int, *, timeout: float = 1800.0, progress=None) -> Figures:
    """Drop `count` datasets on `stack` and measure them until they end (or `timeout`)."""
    run_tag = uuid.uuid4().hex[:8]
    listener = stack.listen_events()
    collector = EventCollector(listener).start()
    try:
        with ActiveJobSampler(stack) as sampler:
            began = time.time()
            uploaded = drop(stack, count, run_tag)
            if progress:
                progress(f"  {count} datasets uploaded in {time.time() - began:.1f} s")
            wait_until_drained(collector, set(uploaded), timeout, progress)
            time.sleep(2.0)  # late copies of events still count as received copies
        collector.stop()
        return measure(stack, collector.snapshot(), uploaded, began, sampler)
    finally:
        if collector._thread.is_alive():
            collector.stop()
        listener.close()


def measure(
    stack, received: list, uploaded: dict[str, float], began: float, sampler: ActiveJobSampler
) -> Figures:
    mine = [r for r in received if r.event.subject in uploaded]
    distinct = {r.event.id: r for r in mine}
    by_dataset: dict[str, list] = defaultdict(list)
    for r in mine:
        by_dataset[r.event.subject].append(r)
    first_time: dict[tuple[str, str], float] = {}  # (uri, type) -> earliest ce-time
    for r in distinct.values():
        key = (r.event.subject, r.event.type)
        stamp = _seconds(r.event.time)
        first_time[key] = min(first_time.get(key, stamp), stamp)
    ends = {
        uri: {r.event.id for r in rs if r.event.type in END_TYPES} for uri, rs in by_dataset.items()
    }
    end_times = [_seconds(r.event.time) for r in distinct.values() if r.event.type in END_TYPES]
    jobs = list_jobs(stack)
    per_label = Counter(job.labels.get(KEY_LABEL, "") for job in jobs)
    records = [r for r in sampler.ledger.records() if r.dataset_uri in uploaded]
    return Figures(
        uploaded=len(uploaded),
        drain_seconds=(max(end_times) - began)
        if end_times and len(ends) == len(uploaded)
        else None,
        events_per_type=dict(
            sorted(Counter(r.event.type.value for r in distinct.values()).items())
        ),
        events_received=len(mine),
        distinct_events=len(distinct),
        jobs_created=len(jobs),
        duplicate_jobs=sum(n - 1 for n in per_label.values() if n > 1),
        datasets_with_several_ends=sum(1 for ids in ends.values() if len(ids) > 1),
        lost=sorted(uri for uri in uploaded if not ends.get(uri)),
        unfinished_records=sum(1 for r in records if r.state not in ENDED_STATES),
        max_active_jobs=sampler.max_active,
        max_slots_held=sampler.max_slots,
        max_concurrent_jobs=stack.config.max_concurrent_jobs,
        out_of_order=sum(1 for rs in by_dataset.values() if not _in_lifecycle_order(rs)),
        ce_time_out_of_order=sum(
            1
            for rs in by_dataset.values()
            if not _in_lifecycle_order(
                sorted({r.event.id: r for r in rs}.values(), key=lambda r: _seconds(r.event.time))
            )
        ),
        accepted_seconds=_latencies(uploaded, first_time, EventType.DATASET_ACCEPTED),
        submitted_seconds=_latencies(uploaded, first_time, EventType.JOB_SUBMITTED),
        end_states=dict(Counter(r.state.value for r in records)),
        orphans_cancelled=sum(len(r.duplicate_jobs) for r in records),
        duplicates_not_cancelled=_duplicates_not_cancelled(jobs, records),
    )


def _duplicates_not_cancelled(jobs: list, records: list) -> int:
    cancelled = {name for r in records for name in r.duplicate_jobs}
    kept = Counter(job.labels.get(KEY_LABEL, "") for job in jobs if job.name not in cancelled)
    return sum(n - 1 for n in kept.values() if n > 1)


def list_jobs(stack) -> list:
    """Every tuning job the emulator holds in the stack's project and default region."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    client = aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": stack.config.vertex_endpoint},
        credentials=AnonymousCredentials(),
    )
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    from google.api_core.exceptions import InternalServerError

    for attempt in range(30):  # with --rate-500 the emulator fails this call too, on purpose
        try:
            return list(client.list_tuning_jobs(request={"parent": parent}))
        except InternalServerError:
            if attempt == 29:
                raise
    raise AssertionError("unreachable")


def _in_lifecycle_order(received: list) -> bool:
    ranks = [LIFECYCLE_RANK[r.event.type] for r in received]
    return all(a <= b for a, b in zip(ranks, ranks[1:]))


def _latencies(uploaded: dict[str, float], first_time: dict, event_type: EventType) -> list[float]:
    return sorted(
        first_time[(uri, event_type)] - done
        for uri, done in uploaded.items()
        if (uri, event_type) in first_time
    )


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def report(figures: Figures) -> str:
    def seconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} s"

    lines = [
        f"datasets uploaded:            {figures.uploaded}",
        f"time to drain:                {seconds(figures.drain_seconds)} (first upload to the last end event)",
        "events per type (distinct):   "
        + ", ".join(
            f"{k.removeprefix('autotune.')} {v}" for k, v in figures.events_per_type.items()
        ),
        f"events received:              {figures.events_received} ({figures.distinct_events} distinct ce-ids, "
        f"{figures.duplicate_event_copies} copies of an already received ce-id)",
        f"jobs created:                 {figures.jobs_created}",
        f"duplicate jobs:               {figures.duplicate_jobs} (jobs beyond one per idempotency label)",
        f"orphans cancelled:            {figures.orphans_cancelled}; duplicates left running or ended: "
        f"{figures.duplicates_not_cancelled}",
        f"datasets with several ends:   {figures.datasets_with_several_ends}",
        f"lost datasets:                {len(figures.lost)}"
        + (f" ({', '.join(figures.lost[:5])}...)" if figures.lost else ""),
        f"ledger records not ended:     {figures.unfinished_records}; end states: "
        + ", ".join(f"{k} {v}" for k, v in sorted(figures.end_states.items())),
        f"max active jobs seen:         {figures.max_active_jobs} on the tuning emulator, {figures.max_slots_held} slots held "
        f"in the ledger (max_concurrent_jobs {figures.max_concurrent_jobs})",
        f"events out of lifecycle order: {figures.out_of_order} datasets by arrival, {figures.ce_time_out_of_order} by ce-time",
        f"upload -> accepted:           p50 {seconds(percentile(figures.accepted_seconds, 0.5))}, "
        f"p95 {seconds(percentile(figures.accepted_seconds, 0.95))} ({len(figures.accepted_seconds)} datasets)",
        f"upload -> submitted:          p50 {seconds(percentile(figures.submitted_seconds, 0.5))}, "
        f"p95 {seconds(percentile(figures.submitted_seconds, 0.95))} ({len(figures.submitted_seconds)} datasets)",
    ]
    return "\n".join(lines)


def invalid_lines(count: int) -> bytes:
    """Lines the validator rejects (no model turn): what an overwrite slips in if the gate is open."""
    return b"".join(
        json.dumps({"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}).encode() + b"\n"
        for i in range(count)
    )


@dataclass
class OverwriteFigures:
    versions_uploaded: int
    versions_accepted: int
    jobs: int
    jobs_on_unvalidated_bytes: int  # the job's example count is not its version's
    unfinished_records: int


def run_overwrite_during_queue(
    stack, count: int, *, timeout: float = 1800.0, progress=None
) -> OverwriteFigures:
    """Upload `count` datasets and overwrite each at once; follow every version to its end."""
    run_tag = uuid.uuid4().hex[:8]
    bucket = stack.storage_client().bucket(stack.bucket)
    examples: dict[tuple[str, str], int] = {}  # (uri, generation) -> examples in that version
    listener = stack.listen_events()
    collector = EventCollector(listener).start()
    try:
        with ActiveJobSampler(stack) as sampler:
            for i in range(count):
                name = f"incoming/overwrite-{run_tag}/{i:04d}.jsonl"
                uri = f"gs://{stack.bucket}/{name}"
                for data, n in (
                    (dataset(f"{run_tag}-{i}"), 20),
                    (invalid_lines(3), 3) if i % 2 == 0 else (dataset(f"{run_tag}-{i}-v2", 25), 25),
                ):
                    blob = bucket.blob(name)
                    blob.upload_from_string(data, content_type="application/jsonl")
                    examples[(uri, str(blob.generation))] = n
            if progress:
                progress(f"  {count} datasets uploaded and overwritten")
            uris = {uri for uri, _ in examples}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                # Every last version has a verdict and every record of these datasets has ended.
                received = collector.snapshot()
                decided = {
                    (r.event.subject, r.event.payload.generation)
                    for r in received
                    if r.event.type in END_TYPES
                }
                last = {
                    max(((u, g) for u, g in examples if u == uri), key=lambda v: int(v[1]))
                    for uri in uris
                }
                records = [r for r in sampler.ledger.records() if r.dataset_uri in uris]
                if last <= decided and all(r.state in ENDED_STATES for r in records):
                    break
                if progress and int(time.monotonic()) % 15 == 0:
                    progress(
                        f"  {len(last & decided)} of {len(last)} last versions decided, "
                        f"{sum(1 for r in records if r.state not in ENDED_STATES)} records not ended"
                    )
                time.sleep(1.0)
        collector.stop()
        records = [r for r in sampler.ledger.records() if r.dataset_uri in uris]
        jobs = [r for r in records if r.job_name]
        wrong = [
            r
            for r in jobs
            if r.tuning_data_stats
            and int(r.tuning_data_stats.get("tuningDatasetExampleCount", -1))
            != examples.get((r.dataset_uri, r.generation))
        ]
        return OverwriteFigures(
            versions_uploaded=len(examples),
            versions_accepted=len(
                {
                    (r.event.subject, r.event.payload.generation)
                    for r in collector.snapshot()
                    if r.event.type == EventType.DATASET_ACCEPTED and r.event.subject in uris
                }
            ),
            jobs=len(jobs),
            jobs_on_unvalidated_bytes=len(wrong),
            unfinished_records=sum(1 for r in records if r.state not in ENDED_STATES),
        )
    finally:
        if collector._thread.is_alive():
            collector.stop()
        listener.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument(
        "--max-jobs", type=int, default=4, help="max_concurrent_jobs (and the emulator's quota)"
    )
    parser.add_argument(
        "--job-seconds", type=float, default=5.0, help="the tuning emulator's job clock"
    )
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="status tick period")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="give up waiting for the drain after this"
    )
    parser.add_argument(
        "--rate-500", type=float, default=0.0, help="share of tuning service calls answered 500"
    )
    parser.add_argument(
        "--rate-429", type=float, default=0.0, help="share of job creations answered 429"
    )
    parser.add_argument(
        "--after-create",
        type=int,
        default=0,
        help="this many creates make their job, then fail to answer",
    )
    parser.add_argument(
        "--list-lag", type=float, default=0.0, help="seconds a new job stays out of list results"
    )
    parser.add_argument(
        "--create-delay",
        type=float,
        default=0.0,
        help="seconds every create outlasts the client's deadline by",
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=5.0,
        help="client deadline per tuning call, in runs with the faults above",
    )
    parser.add_argument(
        "--create-settle",
        type=float,
        default=10.0,
        help="pause after a create without an answer, in those runs",
    )
    parser.add_argument(
        "--overwrite-during-queue",
        action="store_true",
        help="overwrite every dataset right after its upload; count jobs on unvalidated bytes",
    )
    args = parser.parse_args()
    after_create_faults = bool(args.after_create or args.list_lag or args.create_delay)
    extra_env = (
        {
            "AUTOTUNE_TUNING_CALL_TIMEOUT_SECONDS": str(args.call_timeout),
            "AUTOTUNE_TUNING_CREATE_SETTLE_SECONDS": str(args.create_settle),
        }
        if after_create_faults
        else {}
    )

    from autotune_local.stack import options_with, start_stack

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        stack = start_stack(
            options_with(
                state_dir=Path(tmp) / "stack",
                max_concurrent_jobs=args.max_jobs,
                job_seconds=args.job_seconds,
                tick_seconds=args.tick_seconds,
                fault_rate_500=args.rate_500,
                fault_rate_429=args.rate_429,
                extra_env=extra_env,
            )
        )
        try:
            if after_create_faults:
                third, extra = divmod(args.after_create, 3)
                faults = {
                    "nextAfterCreate500": third + (extra > 0),
                    "nextAfterCreate503": third + (extra > 1),
                    "nextAfterCreateStall": third,
                    "stallSeconds": args.call_timeout + 5,
                    "listLagSeconds": args.list_lag,
                    "createDelaySeconds": args.call_timeout + args.create_delay
                    if args.create_delay
                    else 0.0,
                }
                requests.post(
                    f"{stack.config.vertex_endpoint}/emulator/faults", json=faults, timeout=10
                ).raise_for_status()
                print(f"after-create faults: {faults}", flush=True)
            print(
                f"stack up in {time.monotonic() - started:.1f} s: max_concurrent_jobs {args.max_jobs}, "
                f"job clock {args.job_seconds:g} s, tick every {args.tick_seconds:g} s"
                + (
                    f", faults 500 {args.rate_500:.0%} 429 {args.rate_429:.0%}"
                    if args.rate_500 or args.rate_429
                    else ""
                ),
                flush=True,
            )
            if args.overwrite_during_queue:
                attacked = run_overwrite_during_queue(
                    stack,
                    args.datasets,
                    timeout=args.timeout,
                    progress=lambda line: print(line, flush=True),
                )
            else:
                figures = run_load(
                    stack,
                    args.datasets,
                    timeout=args.timeout,
                    progress=lambda line: print(line, flush=True),
                )
        finally:
            stack.stop()
    if args.overwrite_during_queue:
        print(
            f"versions uploaded        {attacked.versions_uploaded}\n"
            f"versions accepted        {attacked.versions_accepted}\n"
            f"jobs                     {attacked.jobs}\n"
            f"jobs on unvalidated bytes {attacked.jobs_on_unvalidated_bytes}\n"
            f"records not ended        {attacked.unfinished_records}"
        )
        return (
            0 if attacked.jobs_on_unvalidated_bytes == 0 and attacked.unfinished_records == 0 else 1
        )
    print(report(figures))
    clean = (
        not figures.lost
        and not figures.duplicates_not_cancelled
        and not figures.datasets_with_several_ends
    )
    clean &= figures.max_active_jobs <= args.max_jobs and figures.max_slots_held <= args.max_jobs
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
