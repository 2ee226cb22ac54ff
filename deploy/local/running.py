"""Is a local stack running in a state directory, and what does it hold?

`autotune up` asks before it replaces a stack (a new one starts with empty emulators, so the
old one's uploads, reports, ledger and jobs are gone); `autotune watch` asks to notice that the
stack it listens to has stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotune_local.processes import is_running
from autotune_local.stack import read_state, recorded_processes

# A stack answering slower than this is described without its contents rather than waited for.
COUNT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RunningStack:
    state_dir: Path
    created: str
    alive: list[str]  # names of its processes still running
    env: dict[str, str]


def running_stack(state_dir: Path) -> RunningStack | None:
    """The stack recorded in state_dir if any of its processes still runs (a killed `up` leaves
    its servers running, with their data)."""
    state = read_state(state_dir)
    if not state:
        return None
    alive = [p.name for p in recorded_processes(state_dir) if is_running(p)]
    if not alive:
        return None
    return RunningStack(state_dir, str(state.get("created", "")), alive, dict(state.get("env", {})))


def events_source_running(state_dir: Path) -> bool:
    """The Pub/Sub emulator of the stack recorded in state_dir still runs (what `watch` listens to)."""
    return (
        any(p.name == "pubsub" and is_running(p) for p in recorded_processes(state_dir))
        if read_state(state_dir)
        else False
    )


def what_would_be_lost(stack: RunningStack) -> list[str]:
    """What the stack holds, one phrase each, counted through its own emulators; a part that does
    not answer is said to be unreachable rather than counted as empty."""
    held: list[str] = []
    env = stack.env
    try:
        from autotune_local.clients import storage_client

        incoming, reports = (
            env.get("AUTOTUNE_INCOMING_PREFIX", "incoming/"),
            env.get("AUTOTUNE_REPORTS_PREFIX", "reports/"),
        )
        names = [
            b.name
            for b in storage_client(env).list_blobs(
                env["AUTOTUNE_BUCKET"], timeout=COUNT_TIMEOUT_SECONDS
            )
        ]
        uploads = sum(n.startswith(incoming) for n in names)
        report_count = sum(n.startswith(reports) for n in names)
        held.append(
            f"{uploads} upload(s), {report_count} report(s) and {len(names) - uploads - report_count} other object(s) "
            f"in gs://{env['AUTOTUNE_BUCKET']}"
        )
    except Exception as exc:  # any failure: a half-dead stack is still worth describing
        held.append(f"the bucket's objects (not counted: {type(exc).__name__})")
    try:
        from autotune_local.clients import firestore_client

        collection = firestore_client(env).collection(
            env.get("AUTOTUNE_LEDGER_COLLECTION", "autotune-datasets")
        )
        states = [
            (snap.to_dict() or {}).get("state")
            for snap in collection.stream(timeout=COUNT_TIMEOUT_SECONDS)
        ]
        active = sum(s in {"QUEUED", "SUBMITTING", "SUBMITTED", "RUNNING"} for s in states)
        held.append(f"{len(states)} ledger record(s), {active} of them queued or running")
    except Exception as exc:
        held.append(f"the ledger (not counted: {type(exc).__name__})")
    return held
