"""The real validate function behind a switch that makes it fail on purpose, to watch the event
bridge and Pub/Sub deliver again: objects named *fails-once* fail on their first delivery,
*always-fails* on every delivery (they end in the dead-letter topic). Deliveries are recorded,
one file per attempt, in AUTOTUNE_TEST_DELIVERIES."""

import importlib.util
import os
from pathlib import Path

import functions_framework

_REAL = Path(__file__).resolve().parents[3] / "functions" / "validate" / "main.py"
_spec = importlib.util.spec_from_file_location("real_validate_main", _REAL)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load the real validate function from {_REAL}")
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)


@functions_framework.cloud_event
def validate(cloud_event):
    name = (cloud_event.data or {}).get("name", "")
    deliveries = Path(os.environ["AUTOTUNE_TEST_DELIVERIES"])
    attempt = len(list(deliveries.glob(f"{cloud_event['id']}.*"))) + 1
    (deliveries / f"{cloud_event['id']}.{attempt}").write_text(name)
    if "always-fails" in name or ("fails-once" in name and attempt == 1):
        raise RuntimeError(f"failing on purpose (attempt {attempt})")
    return real.validate(cloud_event)
