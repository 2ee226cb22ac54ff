"""The real submit function with two changes for fault tests: a submitter's claim expires after
AUTOTUNE_TEST_CLAIM_SECONDS (instead of minutes), and right after the tuning job of a dataset
named *hold-after-create* is created it logs a line and holds, before the ledger records the
job: a test kills the process there, the most dangerous moment for a double job.
AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS, when set, makes a record run out of attempts after that many
(with no pause between them), so a test reaches the give-up path in seconds."""

import dataclasses
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import functions_framework

from autotune.config import PipelineConfig

_REAL = Path(__file__).resolve().parents[3] / "functions" / "submit" / "main.py"
_spec = importlib.util.spec_from_file_location("real_submit_main", _REAL)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the real submit function from {_REAL}")
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)


class HoldingAfterCreate:
    def __init__(self, service) -> None:
        self.service = service

    def __getattr__(self, name):
        return getattr(self.service, name)

    def create(self, parent, job):
        created = self.service.create(parent, job)
        if "hold-after-create" in job.get("description", ""):
            sys.stdout.write(
                json.dumps(
                    {
                        "severity": "INFO",
                        "message": "fault test: job created, holding",
                        "job": created.name,
                    }
                )
                + "\n"
            )
            sys.stdout.flush()
            time.sleep(600)
        return created


def _pipeline():
    from autotune.adapters.jobs import connect_pipeline

    pipeline = connect_pipeline(PipelineConfig.from_env())
    return dataclasses.replace(
        pipeline,
        service=HoldingAfterCreate(pipeline.service),
        claim_seconds=float(os.environ.get("AUTOTUNE_TEST_CLAIM_SECONDS", "300")),
    )


real.configure(pipeline=_pipeline)


def quick_give_up() -> None:
    if "AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS" in os.environ:
        from autotune.jobs import decisions
        from autotune.jobs import submit as submit_module

        # adopt_or_create_job reads its own binding of the limit, the decisions theirs
        decisions.MAX_FAILED_ATTEMPTS = submit_module.MAX_FAILED_ATTEMPTS = int(
            os.environ["AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS"]
        )
        decisions.IMMEDIATE_RETRIES = 10**6


quick_give_up()


@functions_framework.cloud_event
def submit(cloud_event):
    return real.submit(cloud_event)
