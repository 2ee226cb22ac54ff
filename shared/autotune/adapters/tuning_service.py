"""Vertex AI tuning jobs through the GAPIC v1 GenAiTuningServiceClient, over REST.

Production: the regional endpoint `{region}-aiplatform.googleapis.com` of the job's region, with
the function's own credentials. Local stack: the tuning emulator at an http:// endpoint,
anonymous credentials. Both use the REST transport, so the code the tests drive is the code that
runs (the GAPIC default is gRPC). aiplatform_v1 is imported only here and only when first used
(it costs about half a second), and errors come out as TuningServiceError classified quota,
permanent, transient or not-found.

Every call carries a deadline (GAPIC sets none of its own). get, list and cancel are retried here
a bounded number of times on 5xx, 429 and timeouts, waiting what the error's RetryInfo asks when
it says; create is never retried here: a create that timed out or answered 5xx may have made the
job, and only a label lookup can tell (autotune.jobs.submit.adopt_or_create_job does it).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from autotune import structured_log
from autotune.jobs.lifecycle import JobSnapshot, stats_summary
from autotune.jobs.ports import ErrorKind, TuningServiceError

CALL_TIMEOUT_SECONDS = 60.0
CALL_ATTEMPTS = 3  # get, list and cancel: the first try and two retries
RETRY_BASE_SECONDS = 1.0
# A RetryInfo asking for longer than this is not waited out inside one call: the caller's own
# backoff (Pub/Sub redelivery, the next status tick) takes over.
RETRY_MAX_SECONDS = 20.0
_RETRIED = {ErrorKind.TRANSIENT, ErrorKind.QUOTA}


_PERMANENT_STATUSES = {
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "ALREADY_EXISTS",
    "UNIMPLEMENTED",
}
_PERMANENT_CODES = {400, 401, 403, 409, 412, 501}


def classify_error(http_code: int | None, status: str | None = None) -> ErrorKind:
    """Quota, permanent or transient, from an HTTP code and/or a google.rpc status name."""
    if http_code == 429 or status == "RESOURCE_EXHAUSTED":
        return ErrorKind.QUOTA
    if http_code == 404 or status == "NOT_FOUND":
        return ErrorKind.NOT_FOUND
    if status in _PERMANENT_STATUSES or http_code in _PERMANENT_CODES:
        return ErrorKind.PERMANENT
    return ErrorKind.TRANSIENT  # 5xx, 408, timeouts, connection errors, anything unknown: retry


class VertexTuningService:
    def __init__(
        self,
        endpoint: str = "",
        *,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
        attempts: int = CALL_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint  # empty: the regional Vertex AI endpoint
        self.call_timeout = call_timeout
        self.attempts = max(1, attempts)
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def find_by_label(self, parent: str, key: str, value: str) -> JobSnapshot | None:
        """The oldest job carrying the label (the one to adopt), or None."""
        matching = self.jobs_with_label(parent, key, value)
        return matching[0] if matching else None

    def jobs_with_label(self, parent: str, key: str, value: str) -> list[JobSnapshot]:
        """Every job carrying the label, oldest first."""
        client = self._client(_region(parent))
        timeout = self.call_timeout

        def listing(request: dict[str, str]) -> Callable[[], list[Any]]:
            # The pager fetches later pages inside list(): the deadline goes with each page.
            return lambda: list(client.list_tuning_jobs(request=request, timeout=timeout))

        try:
            found = self._retried(listing({"parent": parent, "filter": f'labels.{key}="{value}"'}))
        except TuningServiceError as exc:
            # ListTuningJobs documents only "the standard list filter"; should the service refuse
            # the label form (400), every job of the region is listed and matched here instead,
            # rather than failing the dataset: adoption must not depend on that syntax.
            if exc.kind != ErrorKind.PERMANENT or exc.code != 400:
                raise
            structured_log.warning(
                "tuning jobs: label filter refused, matching labels client-side",
                parent=parent,
                error=exc.message,
            )
            found = self._retried(listing({"parent": parent}))
        matching = [job for job in found if job.labels.get(key) == value]
        return [
            snapshot(job) for job in sorted(matching, key=lambda job: (job.create_time, job.name))
        ]

    def create(self, parent: str, job: Mapping[str, Any]) -> JobSnapshot:
        from google.cloud import aiplatform_v1

        client = self._client(_region(parent))
        message = aiplatform_v1.TuningJob.from_json(json.dumps(job))
        return snapshot(
            _call(
                lambda: client.create_tuning_job(
                    parent=parent, tuning_job=message, timeout=self.call_timeout
                )
            )
        )

    def get(self, name: str) -> JobSnapshot:
        client = self._client(_region(name))
        return snapshot(
            self._retried(lambda: client.get_tuning_job(name=name, timeout=self.call_timeout))
        )

    def cancel(self, name: str) -> None:
        client = self._client(_region(name))
        self._retried(lambda: client.cancel_tuning_job(name=name, timeout=self.call_timeout))

    def _retried(self, action: Callable[[], Any]) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return _call(action)
            except TuningServiceError as exc:
                if exc.kind not in _RETRIED or attempt == self.attempts:
                    raise
                delay = retry_delay(exc.retry_after, attempt)
                if delay is None:
                    raise
                structured_log.warning(
                    "tuning service call failed, retrying",
                    error=exc.message,
                    code=exc.code,
                    attempt=attempt,
                    wait_seconds=round(delay, 2),
                )
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _client(self, region: str) -> Any:
        key = self.endpoint or region
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _make_client(self.endpoint, region)
            return self._clients[key]


def retry_delay(asked: float | None, attempt: int) -> float | None:
    """Seconds to wait before retry number `attempt`: what RetryInfo asked, else a jittered
    doubling; None when the service asks for longer than one call may wait."""
    if asked is not None:
        return asked if asked <= RETRY_MAX_SECONDS else None
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1)) * random.uniform(
        0.5, 1.0
    )


def _make_client(endpoint: str, region: str) -> Any:
    from google.cloud import aiplatform_v1

    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return aiplatform_v1.GenAiTuningServiceClient(
            transport="rest",
            client_options={"api_endpoint": endpoint},
            credentials=AnonymousCredentials(),
        )
    return aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": endpoint or f"{region}-aiplatform.googleapis.com"},
    )


def _region(resource: str) -> str:
    parts = resource.split("/")
    try:
        return parts[parts.index("locations") + 1]
    except (ValueError, IndexError):
        raise TuningServiceError(ErrorKind.PERMANENT, f"{resource!r} names no location") from None


def _call(action: Callable[[], Any]) -> Any:
    from google.api_core import exceptions as api_exceptions

    try:
        return action()
    except api_exceptions.GoogleAPICallError as exc:
        status = exc.grpc_status_code.name if exc.grpc_status_code is not None else None
        code = exc.code if isinstance(exc.code, int) else None
        error = TuningServiceError(classify_error(code, status), _service_message(exc), code)
        error.retry_after = retry_info_seconds(exc.details)
        raise error from exc
    except (api_exceptions.RetryError, TimeoutError, ConnectionError) as exc:
        raise TuningServiceError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # requests' connection and timeout errors derive from it
        raise TuningServiceError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}") from exc


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def retry_info_seconds(details: Any) -> float | None:
    """The delay of a google.rpc.RetryInfo among an error's details: REST gives JSON dicts
    ({"@type": ".../google.rpc.RetryInfo", "retryDelay": "3s"}), gRPC gives messages."""
    for detail in details or ():
        if isinstance(detail, Mapping):
            if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                match = _DURATION.match(str(detail.get("retryDelay", "")))
                if match:
                    return float(match.group(1))
        elif type(detail).__name__ == "RetryInfo":
            delay = getattr(detail, "retry_delay", None)
            if delay is not None:
                return delay.seconds + delay.nanos / 1e9
    return None


def _service_message(exc: Any) -> str:
    """The service's own words: REST errors prefix them with the method and the URL."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.json()["error"]["message"])
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
    return exc.message or str(exc)


def state_name(state: Any) -> str:
    """A JobState's name; a number this library does not know (the service adds states over
    time, and proto-plus hands them over as plain ints) is kept as that number."""
    name = getattr(state, "name", None)
    return name if isinstance(name, str) else str(int(state))


def snapshot(job: Any) -> JobSnapshot:
    """JobSnapshot of an aiplatform_v1.TuningJob, with a bounded summary of its stats."""
    as_json = json.loads(type(job).to_json(job))
    raw_stats = (as_json.get("tuningDataStats") or {}).get("supervisedTuningDataStats") or {}
    tuned = as_json.get("tunedModel") or {}
    return JobSnapshot(
        name=job.name,
        state=state_name(job.state),
        labels=dict(job.labels),
        started=bool(as_json.get("startTime")),
        error=(as_json.get("error") or {}).get("message", ""),
        tuned_model=tuned.get("model", ""),
        endpoint=tuned.get("endpoint", ""),
        stats=stats_summary(raw_stats),
        create_time=as_json.get("createTime", ""),
        end_time=as_json.get("endTime", ""),
    )
