"""The load benchmark (bench/load.py) with a small N: a dozen datasets dropped at once under a
quota of 3 jobs. Whatever the timing, none is lost, none gets two jobs or two ends, and the
tuning service and the ledger never hold more than max_concurrent_jobs jobs at once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"
_spec = importlib.util.spec_from_file_location("autotune_load_bench", _BENCH)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the load benchmark from {_BENCH}")
load_bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = load_bench  # dataclasses look their module up there
_spec.loader.exec_module(load_bench)

DATASETS = 12
MAX_JOBS = 3


@pytest.fixture(scope="module")
def stack(make_local_stack):
    return make_local_stack(max_concurrent_jobs=MAX_JOBS, job_seconds=2.0, tick_seconds=1.0)


def test_a_dozen_datasets_at_once_drain_with_no_loss_no_duplicate_and_the_quota_held(stack):
    figures = load_bench.run_load(stack, DATASETS, timeout=600)
    print(load_bench.report(figures))
    assert figures.lost == []
    assert figures.duplicate_jobs == 0 and figures.datasets_with_several_ends == 0
    assert figures.jobs_created == DATASETS
    assert figures.unfinished_records == 0 and figures.end_states == {"SUCCEEDED": DATASETS}
    assert figures.events_per_type["autotune.job.v1.succeeded"] == DATASETS
    assert 0 < figures.max_active_jobs <= MAX_JOBS and 0 < figures.max_slots_held <= MAX_JOBS
    assert len(figures.accepted_seconds) == len(figures.submitted_seconds) == DATASETS
