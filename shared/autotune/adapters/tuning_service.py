"""Vertex AI tuning jobs through the GAPIC v1 GenAiTuningServiceClient.

Production: the regional endpoint `{region}-aiplatform.googleapis.com` of the job's region, with
the function's own credentials. Local stack: REST to the tuning emulator at an http:// endpoint,
anonymous credentials. aiplatform_v1 is imported only here and only when first used (it costs
about half a second), and errors come out as TuningServiceError classified quota, permanent,
transient or not-found.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from autotune import structured_log
from autotune.job_lifecycle import JobSnapshot
from autotune.submission import ErrorKind, TuningServiceError, classify_error

CALL_TIMEOUT_SECONDS = 60.0


class VertexTuningService:
    def __init__(self, endpoint: str = "") -> None:
        self.endpoint = endpoint  # empty: the regional Vertex AI endpoint
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def find_by_label(self, parent: str, key: str, value: str) -> JobSnapshot | None:
        client = self._client(_region(parent))
        try:
            found = _call(lambda: list(client.list_tuning_jobs(request={"parent": parent, "filter": f'labels.{key}="{value}"'})))
        except TuningServiceError as exc:
            # ListTuningJobs documents only "the standard list filter"; should the service refuse
            # the label form (400), every job of the region is listed and matched here instead,
            # rather than failing the dataset: adoption must not depend on that syntax.
            if exc.kind != ErrorKind.PERMANENT or exc.code != 400:
                raise
            structured_log.warning("tuning jobs: label filter refused, matching labels client-side", parent=parent, error=exc.message)
            found = _call(lambda: list(client.list_tuning_jobs(request={"parent": parent})))
        matching = [job for job in found if job.labels.get(key) == value]
        if not matching:
            return None
        return snapshot(min(matching, key=lambda job: job.create_time))

    def create(self, parent: str, job: Mapping[str, Any]) -> JobSnapshot:
        from google.cloud import aiplatform_v1

        client = self._client(_region(parent))
        message = aiplatform_v1.TuningJob.from_json(json.dumps(job))
        return snapshot(_call(lambda: client.create_tuning_job(parent=parent, tuning_job=message, timeout=CALL_TIMEOUT_SECONDS)))

    def get(self, name: str) -> JobSnapshot:
        client = self._client(_region(name))
        return snapshot(_call(lambda: client.get_tuning_job(name=name, timeout=CALL_TIMEOUT_SECONDS)))

    def cancel(self, name: str) -> None:
        client = self._client(_region(name))
        _call(lambda: client.cancel_tuning_job(name=name, timeout=CALL_TIMEOUT_SECONDS))

    def _client(self, region: str) -> Any:
        key = self.endpoint or region
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _make_client(self.endpoint, region)
            return self._clients[key]


def _make_client(endpoint: str, region: str) -> Any:
    from google.cloud import aiplatform_v1

    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return aiplatform_v1.GenAiTuningServiceClient(
            transport="rest", client_options={"api_endpoint": endpoint}, credentials=AnonymousCredentials()
        )
    return aiplatform_v1.GenAiTuningServiceClient(client_options={"api_endpoint": endpoint or f"{region}-aiplatform.googleapis.com"})


def _region(resource: str) -> str:
    parts = resource.split("/")
    try:
        return parts[parts.index("locations") + 1]
    except (ValueError, IndexError):
        raise TuningServiceError(ErrorKind.PERMANENT, f"{resource!r} names no location") from None


def _call(action: Any) -> Any:
    from google.api_core import exceptions as api_exceptions

    try:
        return action()
    except api_exceptions.GoogleAPICallError as exc:
        status = exc.grpc_status_code.name if exc.grpc_status_code is not None else None
        code = exc.code if isinstance(exc.code, int) else None
        raise TuningServiceError(classify_error(code, status), _service_message(exc), code) from exc
    except (api_exceptions.RetryError, TimeoutError, ConnectionError) as exc:
        raise TuningServiceError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # requests' connection and timeout errors derive from it
        raise TuningServiceError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}") from exc


def _service_message(exc: Any) -> str:
    """The service's own words: REST errors prefix them with the method and the URL."""
    response = getattr(exc, "response", None)
    try:
        return str(response.json()["error"]["message"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return exc.message or str(exc)


def snapshot(job: Any) -> JobSnapshot:
    """JobSnapshot of an aiplatform_v1.TuningJob, with stats in the REST JSON shape."""
    as_json = json.loads(type(job).to_json(job))
    raw_stats = (as_json.get("tuningDataStats") or {}).get("supervisedTuningDataStats") or {}
    stats = {key: value for key, value in raw_stats.items() if value not in ([], {}, "")}
    tuned = as_json.get("tunedModel") or {}
    return JobSnapshot(
        name=job.name,
        state=job.state.name,
        labels=dict(job.labels),
        started=bool(as_json.get("startTime")),
        error=(as_json.get("error") or {}).get("message", ""),
        tuned_model=tuned.get("model", ""),
        endpoint=tuned.get("endpoint", ""),
        stats=stats,
        create_time=as_json.get("createTime", ""),
        end_time=as_json.get("endTime", ""),
    )
