"""The real status function with a submitter's claim expiring after AUTOTUNE_TEST_CLAIM_SECONDS
and, when AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS is set, attempts running out after that many (as in
holding_submit.py), so a take-over and the give-up path happen within a test."""

import dataclasses
import importlib.util
import os
from pathlib import Path

import functions_framework

from autotune.config import PipelineConfig

_FUNCTIONS = Path(__file__).resolve().parent
_REAL = _FUNCTIONS.parents[2] / "functions" / "status" / "main.py"
_spec = importlib.util.spec_from_file_location("real_status_main", _REAL)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the real status function from {_REAL}")
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)


def _pipeline():
    from autotune.adapters.jobs import connect_pipeline

    pipeline = connect_pipeline(PipelineConfig.from_env())
    return dataclasses.replace(
        pipeline, claim_seconds=float(os.environ.get("AUTOTUNE_TEST_CLAIM_SECONDS", "300"))
    )


real.configure(pipeline=_pipeline)

if "AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS" in os.environ:
    from autotune.jobs import decisions
    from autotune.jobs import submit as submit_module

    # adopt_or_create_job reads its own binding of the limit, the decisions theirs
    decisions.MAX_FAILED_ATTEMPTS = submit_module.MAX_FAILED_ATTEMPTS = int(
        os.environ["AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS"]
    )
    decisions.IMMEDIATE_RETRIES = 10**6


@functions_framework.cloud_event
def status(cloud_event):
    return real.status(cloud_event)
