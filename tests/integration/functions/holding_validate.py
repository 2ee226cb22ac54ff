"""The real validate function, holding objects named *hold-* for a few seconds before it
starts, with a log line saying so: a test kills the process while it holds (mid-flight)."""

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import functions_framework

_REAL = Path(__file__).resolve().parents[3] / "functions" / "validate" / "main.py"
_spec = importlib.util.spec_from_file_location("real_validate_main", _REAL)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the real validate function from {_REAL}")
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)

HOLD_SECONDS = float(os.environ.get("AUTOTUNE_TEST_HOLD_SECONDS", "3"))


@functions_framework.cloud_event
def validate(cloud_event):
    name = (cloud_event.data or {}).get("name", "")
    if "hold-" in name:
        sys.stdout.write(
            json.dumps({"severity": "INFO", "message": "fault test: holding", "object": name})
            + "\n"
        )
        sys.stdout.flush()
        time.sleep(HOLD_SECONDS)
    return real.validate(cloud_event)
