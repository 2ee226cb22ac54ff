"""Cloud Logging structured JSON on stdout: one line per decision.

Cloud Run turns each JSON line into a log entry (severity, message, and the rest as
jsonPayload). Callers pass names, counts and states only: never dataset content.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_TRACE_KEY = "logging.googleapis.com/trace"


def log(
    severity: str,
    message: str,
    *,
    dataset: str | None = None,
    trace: str | None = None,
    **fields: Any,
) -> None:
    entry: dict[str, Any] = {"severity": severity, "message": message}
    if dataset is not None:
        entry["dataset"] = dataset
    if trace:
        entry[_TRACE_KEY] = trace
    entry.update(fields)
    sys.stdout.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)


def trace_from_traceparent(traceparent: str | None, project: str) -> str | None:
    """W3C `traceparent` "00-TRACEID-SPANID-FLAGS" (Eventarc sets it) -> `projects/P/traces/TRACEID`,
    the field Cloud Logging uses to group a request's lines."""
    parts = str(traceparent or "").split("-")
    if len(parts) < 3 or not parts[1]:
        return None
    return f"projects/{project}/traces/{parts[1]}"
