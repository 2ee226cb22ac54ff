"""The local stack for integration tests: the same code as `autotune up`, on free ports.

`local_stack` is one stack shared by the whole session (fast jobs, frequent ticks); a test that
needs other settings asks `make_local_stack(**overrides)` for a stack of its own, e.g.
`make_local_stack(max_concurrent_jobs=2, job_seconds=5, fault_rate_429=0.5)`. Overrides are
StackOptions fields (job_seconds, quota, fault_rate_429, fault_rate_500, tick_seconds,
functions, extra_env, ...) or PipelineConfig fields (max_concurrent_jobs, allowed_media_buckets,
...). Every stack is stopped by PID at the end of the session (or earlier by `stack.stop()`).

A stack object has: .env (the local.env variables), .config (PipelineConfig), .project,
.bucket, .ports, .log_dir, .processes; .upload(bytes_or_path, object_name, metadata=...) ->
generation; .listen_events() -> an EventListener (its own pull subscription on tuning-events:
.poll(), .wait_for(predicate, timeout=...), .received, .events_for(uri), .close());
.storage_client(), .publisher(), .subscriber(), .firestore_client() bound to the stack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autotune_local.stack import STATE_FILE, LocalStack, options_with, start_stack, stop_recorded

# The shared stack runs jobs quickly and polls often, so job tests finish in seconds.
SESSION_STACK_DEFAULTS: dict[str, object] = {"job_seconds": 4.0, "tick_seconds": 1.0}


def stop_orphaned_stacks(pytest_root: Path) -> None:
    """Stacks of an earlier test run that was killed before its teardown: their owner is gone.
    A stack whose owner still runs (another test session right now) is left alone."""
    for state_file in pytest_root.glob(f"pytest-*/*/{STATE_FILE}"):
        try:
            owner = json.loads(state_file.read_text())["owner_pid"]
            os.kill(owner, 0)
        except ProcessLookupError:
            stop_recorded(state_file.parent)
        except (OSError, ValueError, KeyError):
            continue


@pytest.fixture(scope="session")
def make_local_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalStack]]:
    stop_orphaned_stacks(tmp_path_factory.getbasetemp().parent)
    started: list[LocalStack] = []

    def factory(**overrides: Any) -> LocalStack:
        options = options_with(state_dir=tmp_path_factory.mktemp("stack"), **overrides)
        stack = start_stack(options)
        started.append(stack)
        return stack

    yield factory
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def local_stack(make_local_stack: Callable[..., LocalStack]) -> LocalStack:
    return make_local_stack(**SESSION_STACK_DEFAULTS)
