"""A local stand-in for the Vertex AI tuning service (v1 REST), so the pipeline runs offline.

    python -m autotune_local.tuning_emulator --host 127.0.0.1 --port PORT \
        --storage-endpoint http://127.0.0.1:GCSPORT [--quota 1] [--quota-scope project|region] [--job-seconds 15] \
        [--fault-rate-429 0.0] [--fault-rate-500 0.0]

Routes (what the GAPIC `GenAiTuningServiceClient` calls over REST):
    POST /v1/projects/P/locations/L/tuningJobs              create
    GET  /v1/projects/P/locations/L/tuningJobs/ID           get
    GET  /v1/projects/P/locations/L/tuningJobs?filter=...   list (filter: labels.KEY=VALUE [AND ...])
    POST /v1/projects/P/locations/L/tuningJobs/ID:cancel    cancel
    GET  /healthz                                           200 when ready
Control routes, for tests and demos (not part of Vertex AI):
    POST /emulator/fail-next   {"message": "..."}           the next created job ends FAILED
    POST /emulator/faults      {"rate429": F, "rate500": F, "next429": N, "next500": N,     before the call
                                "rate503": F, "next503": N, "rateLimit429": F,
                                "nextAfterCreate500": N, "nextAfterCreate503": N,        the job is made,
                                "nextAfterCreateStall": N, "stallSeconds": S,            then the call fails
                                "createDelaySeconds": S, "listLagSeconds": S}
    POST /emulator/config      {"quota": N, "jobSeconds": S, "quotaScope": "project"|"region",
                                "cancellingSeconds": S, "cancelEndsAnywayShare": F,
                                "reportState": N|null}
    GET  /emulator/state                                    the settings above and job counts
A job created with the label `autotune-emulator-fail` (any value) also ends FAILED. The same
routes under /v1beta1/ serve google-genai's client.tunings.

Faults as the real service has them: 429 (create's quota, or a request-rate limit on any call)
and 503 answer with google.rpc.Status details (ErrorInfo, QuotaFailure, RetryInfo); a create can
make its job and then answer 500/503 or stall past the client's deadline ("after create"), or
take longer than that deadline before the job exists ("createDelaySeconds"); a new job can be
missing from lists for a while ("listLagSeconds"). Cancel is asynchronous: CANCELLING for
"cancellingSeconds", then CANCELLED, except a share ("cancelEndsAnywayShare") that ends as it
would have anyway (SUCCEEDED or FAILED). "reportState" makes every running job report that
JobState number (10 UPDATING, 11 PARTIALLY_SUCCEEDED, or one no client library knows), written
as a name when the emulator knows one and as the number otherwise.

Like the service it accepts enums as integers or names and answers with names, writes int64
fields (epochCount) as strings, validates the request (known base model, adapter size allowed
for it, region the model tunes in, a gs:// training file that exists) with 400
INVALID_ARGUMENT, and keeps a per-project concurrent-job quota across all regions (429
RESOURCE_EXHAUSTED). A job's state follows its own clock: QUEUED, PENDING, RUNNING, then
SUCCEEDED (or FAILED) after `job seconds`. Injected 429s apply to create (where quota is
checked); injected 500s to every /v1 call.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import requests

from autotune import catalog
from autotune.catalog import ADAPTER_SIZE_ENUM_NAMES, ADAPTER_SIZE_ENUM_NUMBERS

JOB_STATES = {
    0: "JOB_STATE_UNSPECIFIED",
    1: "JOB_STATE_QUEUED",
    2: "JOB_STATE_PENDING",
    3: "JOB_STATE_RUNNING",
    4: "JOB_STATE_SUCCEEDED",
    5: "JOB_STATE_FAILED",
    6: "JOB_STATE_CANCELLING",
    7: "JOB_STATE_CANCELLED",
    8: "JOB_STATE_PAUSED",
    9: "JOB_STATE_EXPIRED",
    10: "JOB_STATE_UPDATING",
    11: "JOB_STATE_PARTIALLY_SUCCEEDED",
}
ENDED_STATES = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)
# Vertex AdapterSize enum (number -> name, name -> size) from the catalog's one mapping.
ADAPTER_SIZE_ENUM = {0: "ADAPTER_SIZE_UNSPECIFIED"} | {
    ADAPTER_SIZE_ENUM_NUMBERS[size]: name for size, name in ADAPTER_SIZE_ENUM_NAMES.items()
}
ADAPTER_SIZE_VALUE = {name: size for size, name in ADAPTER_SIZE_ENUM_NAMES.items()}
FAIL_LABEL = "autotune-emulator-fail"
_LABEL_RE = re.compile(r"^[a-z0-9_-]{1,63}$")
_LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
# Share of a job's time spent in each state before it ends.
_QUEUED_UNTIL = 0.10
_PENDING_UNTIL = 0.25


class ApiError(Exception):
    """An error answered in Google's JSON shape: {"error": {"code", "message", "status", "details"}}."""

    def __init__(
        self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


_DETAIL = "type.googleapis.com/google.rpc."


def retry_info(seconds: float) -> dict[str, Any]:
    return {"@type": _DETAIL + "RetryInfo", "retryDelay": f"{seconds:g}s"}


def unavailable(
    message: str = "emulator: injected unavailable", retry_seconds: float = 1.0
) -> ApiError:
    return ApiError(
        503,
        "UNAVAILABLE",
        message,
        [
            {
                "@type": _DETAIL + "ErrorInfo",
                "reason": "SERVICE_UNAVAILABLE",
                "domain": "aiplatform.googleapis.com",
            },
            retry_info(retry_seconds),
        ],
    )


def rate_limited(method: str, retry_seconds: float = 1.0) -> ApiError:
    metric = "aiplatform.googleapis.com/online_prediction_requests_per_base_model"
    quota = f"aiplatform.googleapis.com/{method}_requests_per_minute"
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        f"Quota exceeded for quota metric '{metric}' and limit '{quota}' (emulator: injected request-rate limit).",
        [
            {
                "@type": _DETAIL + "ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "aiplatform.googleapis.com", "quota_limit": quota},
            },
            {
                "@type": _DETAIL + "QuotaFailure",
                "violations": [{"subject": "project", "description": f"{quota} exceeded"}],
            },
            retry_info(retry_seconds),
        ],
    )


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


# --- what the service knows about models ------------------------------------------------------


@dataclass(frozen=True)
class ModelRules:
    adapter_sizes: frozenset[int]
    regions: frozenset[str]


class EmulatorModelRules(Protocol):
    def rules(self, model: str) -> ModelRules | None: ...


class CatalogModelRules:
    """The model rules of autotune's own catalog (shared/autotune/catalog), the one source of truth."""

    def rules(self, model: str) -> ModelRules | None:
        spec = catalog.get_model(model)
        if spec is None:
            return None
        return ModelRules(
            adapter_sizes=frozenset(spec.adapter_sizes), regions=frozenset(spec.regions)
        )


# --- where datasets are read from ---------------------------------------------------------------


class EmulatorDatasets(Protocol):
    def exists(self, uri: str) -> bool: ...

    def lines(self, uri: str) -> Iterator[bytes]: ...


class FakeGcsStore:
    """Reads gs:// objects from fake-gcs-server's JSON API."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.session = requests.Session()

    def _url(self, uri: str) -> str:
        bucket, name = split_gs_uri(uri)
        return f"{self.endpoint}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o/{urllib.parse.quote(name, safe='')}"

    def exists(self, uri: str) -> bool:
        response = self.session.get(self._url(uri), timeout=10)
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    def lines(self, uri: str) -> Iterator[bytes]:
        with self.session.get(
            self._url(uri), params={"alt": "media"}, stream=True, timeout=30
        ) as response:
            response.raise_for_status()
            yield from response.iter_lines()


class MemoryStore:
    """Objects held in a dict (gs:// URI -> bytes), for tests that need no storage server."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects = dict(objects or {})

    def exists(self, uri: str) -> bool:
        return uri in self.objects

    def lines(self, uri: str) -> Iterator[bytes]:
        yield from self.objects[uri].splitlines()


def split_gs_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise invalid(f"dataset URI {uri!r} must start with gs://")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise invalid(f"dataset URI {uri!r} must name a bucket and an object")
    return bucket, name


def dataset_stats(lines: Iterator[bytes], epochs: int) -> dict[str, Any]:
    """supervisedTuningDataStats from the file: examples counted, tokens estimated at 4 chars each."""
    examples = 0
    characters = 0
    for line in lines:
        if not line.strip():
            continue
        examples += 1
        characters += _text_length(line)
    tokens = -(-characters // 4)
    return {
        "tuningDatasetExampleCount": str(examples),
        "totalTuningCharacterCount": str(characters),
        "totalBillableCharacterCount": str(characters * epochs),
        "totalBillableTokenCount": str(tokens * epochs),
        "tuningStepCount": str(max(1, examples * epochs // 8)),
        "totalTruncatedExampleCount": "0",
    }


def _text_length(line: bytes) -> int:
    try:
        example = json.loads(line)
    except ValueError:
        return len(line)
    return sum(len(text) for text in _texts(example))


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"text", "content"} and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Job:
    name: str
    project: str
    location: str
    body: dict[str, Any]  # the validated request, normalised (enum names, string int64)
    created: float  # time.time()
    seconds: float
    stats: dict[str, Any]
    fail_message: str | None = None
    cancelled_at: float | None = None  # when CANCELLING ends in CANCELLED
    cancel_requested_at: float | None = None
    cancel_ignored: bool = False  # the cancel came too late: the job ends as it would have

    def state(self, now: float, report_state: int | None = None) -> str | int:
        natural = self._natural_state(now)
        if self.cancel_requested_at is not None:
            if self.cancel_ignored:
                return natural if natural in ENDED_STATES else "JOB_STATE_CANCELLING"
            if self.cancelled_at is not None and now >= self.cancelled_at:
                return "JOB_STATE_CANCELLED"
            return "JOB_STATE_CANCELLING"
        if report_state is not None and natural == "JOB_STATE_RUNNING":
            return JOB_STATES.get(report_state, report_state)
        return natural

    def ended(self, now: float) -> bool:
        return self.state(now) in ENDED_STATES

    def _natural_state(self, now: float) -> str:
        progress = (now - self.created) / self.seconds if self.seconds > 0 else 1.0
        if progress < _QUEUED_UNTIL:
            return "JOB_STATE_QUEUED"
        if progress < _PENDING_UNTIL:
            return "JOB_STATE_PENDING"
        if progress < 1.0:
            return "JOB_STATE_RUNNING"
        return "JOB_STATE_FAILED" if self.fail_message else "JOB_STATE_SUCCEEDED"

    def to_json(self, now: float, report_state: int | None = None) -> dict[str, Any]:
        state = self.state(now, report_state)
        out = dict(self.body)
        out.update(name=self.name, state=state, createTime=_rfc3339(self.created))
        started = self.created + self.seconds * _PENDING_UNTIL
        ended = (
            self.cancelled_at
            if state == "JOB_STATE_CANCELLED" and self.cancelled_at is not None
            else self.created + self.seconds
        )
        if state not in {
            "JOB_STATE_QUEUED",
            "JOB_STATE_PENDING",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_CANCELLING",
        } or (
            state in {"JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING"} and min(now, ended) >= started
        ):
            out["startTime"] = _rfc3339(started)
            out["tuningDataStats"] = {"supervisedTuningDataStats": self.stats}
        out["updateTime"] = _rfc3339(min(now, ended) if state in ENDED_STATES else now)
        if state in ENDED_STATES:
            out["endTime"] = _rfc3339(ended)
        if state == "JOB_STATE_SUCCEEDED":
            number = self.name.rsplit("/", 1)[1]
            prefix = f"projects/{self.project}/locations/{self.location}"
            out["tunedModel"] = {
                "model": f"{prefix}/models/{number}@1",
                "endpoint": f"{prefix}/endpoints/{number}",
            }
        elif state == "JOB_STATE_FAILED":
            out["error"] = {"code": 3, "message": self.fail_message}
        elif state == "JOB_STATE_CANCELLED":
            out["error"] = {"code": 1, "message": "CANCELED"}
        return out


@dataclass
class Faults:
    rate429: float = 0.0  # create only: the concurrent-job quota answer
    rate500: float = 0.0
    next429: int = 0
    next500: int = 0
    rate503: float = 0.0
    next503: int = 0
    rateLimit429: float = 0.0  # every call: a request-rate quota
    nextAfterCreate500: int = 0
    nextAfterCreate503: int = 0
    nextAfterCreateStall: int = 0
    stallSeconds: float = 90.0
    createDelaySeconds: float = 0.0
    listLagSeconds: float = 0.0


_FAULT_RATES = ("rate429", "rate500", "rate503", "rateLimit429")
_FAULT_COUNTS = (
    "next429",
    "next500",
    "next503",
    "nextAfterCreate500",
    "nextAfterCreate503",
    "nextAfterCreateStall",
)
_FAULT_SECONDS = ("stallSeconds", "createDelaySeconds", "listLagSeconds")


@dataclass
class TuningEmulator:
    store: EmulatorDatasets
    catalog: EmulatorModelRules = field(default_factory=CatalogModelRules)
    quota: int = 1
    job_seconds: float = 15.0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    jobs: dict[str, Job] = field(default_factory=dict)
    fail_next: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=random.Random)
    quota_scope: str = "project"  # the concurrent-job quota counts the project's jobs in every region, or per "region"
    cancelling_seconds: float = 0.0
    cancel_ends_anyway_share: float = 0.0
    report_state: int | None = None
    sleep: Callable[[float], None] = time.sleep

    # Faults are decided under the lock so a counted fault ("next429": 1) fires exactly once.
    def inject(self, *, creating: bool, method: str = "create") -> None:
        with self.lock:
            if self.faults.next500 > 0:
                self.faults.next500 -= 1
                raise ApiError(500, "INTERNAL", "emulator: injected internal error")
            if self.faults.rate500 and self.rng.random() < self.faults.rate500:
                raise ApiError(500, "INTERNAL", "emulator: injected internal error")
            if self.faults.next503 > 0:
                self.faults.next503 -= 1
                raise unavailable()
            if self.faults.rate503 and self.rng.random() < self.faults.rate503:
                raise unavailable()
            if self.faults.rateLimit429 and self.rng.random() < self.faults.rateLimit429:
                raise rate_limited(method)
            if not creating:
                return
            if self.faults.next429 > 0:
                self.faults.next429 -= 1
                raise _quota_error("emulator: injected quota error")
            if self.faults.rate429 and self.rng.random() < self.faults.rate429:
                raise _quota_error("emulator: injected quota error")

    def create(self, project: str, location: str, request: dict[str, Any]) -> dict[str, Any]:
        body, training_uri, epochs = self._validated(location, request)
        stats = dataset_stats(self.store.lines(training_uri), epochs)
        with self.lock:
            delay = self.faults.createDelaySeconds
        if delay:
            self.sleep(delay)  # the job exists only after this: a slow create
        with self.lock:
            now = self.clock()
            active = sum(
                1
                for job in self.jobs.values()
                if job.project == project
                and (self.quota_scope != "region" or job.location == location)
                and not job.ended(now)
            )
            if active >= self.quota:
                where = f"project {project}" + (
                    f" in {location}" if self.quota_scope == "region" else ""
                )
                raise _quota_error(
                    f"Quota exceeded for aiplatform.googleapis.com/concurrent_tuning_jobs: {active} of {self.quota} "
                    f"concurrent tuning jobs are running in {where}."
                )
            job_id = str(secrets.randbelow(9 * 10**18) + 10**18)
            fail_message = None
            if FAIL_LABEL in body.get("labels", {}):
                fail_message = f"emulator: job failed as asked by its {FAIL_LABEL} label"
            elif self.fail_next:
                fail_message = self.fail_next.pop(0)
            job = Job(
                name=f"projects/{project}/locations/{location}/tuningJobs/{job_id}",
                project=project,
                location=location,
                body=body,
                created=now,
                seconds=self.job_seconds,
                stats=stats,
                fail_message=fail_message,
            )
            self.jobs[job.name] = job
            answer = job.to_json(now, self.report_state)
            after = next(
                (
                    key
                    for key in ("nextAfterCreate500", "nextAfterCreate503", "nextAfterCreateStall")
                    if getattr(self.faults, key) > 0
                ),
                None,
            )
            if after is not None:
                setattr(self.faults, after, getattr(self.faults, after) - 1)
            stall = self.faults.stallSeconds
        if after == "nextAfterCreate500":
            raise ApiError(
                500, "INTERNAL", "emulator: injected internal error after the job was created"
            )
        if after == "nextAfterCreate503":
            raise unavailable("emulator: injected unavailable after the job was created")
        if after == "nextAfterCreateStall":
            self.sleep(stall)  # the client's deadline passes first; the job exists all along
        return answer

    def get(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self._job(name)
            return job.to_json(self.clock(), self.report_state)

    def list(
        self, parent: str, filter_text: str, page_size: int, page_token: str
    ) -> dict[str, Any]:
        wanted = parse_label_filter(filter_text)
        with self.lock:
            now = self.clock()
            lag = self.faults.listLagSeconds
            matching = [
                job
                for job in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
                if job.name.startswith(parent + "/tuningJobs/")
                and now - job.created >= lag
                and all(
                    job.body.get("labels", {}).get(key) == value for key, value in wanted.items()
                )
            ]
            start = int(page_token) if page_token.isdigit() else 0
            size = page_size if page_size > 0 else 100
            page = matching[start : start + size]
            out: dict[str, Any] = {
                "tuningJobs": [job.to_json(now, self.report_state) for job in page]
            }
            if start + size < len(matching):
                out["nextPageToken"] = str(start + size)
            return out

    def cancel(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self._job(name)
            now = self.clock()
            state = job.state(now)
            if state in ENDED_STATES:
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"Tuning job {name} is in state {state} and cannot be cancelled.",
                )
            if job.cancel_requested_at is None:
                job.cancel_requested_at = now
                job.cancelled_at = now + self.cancelling_seconds
                job.cancel_ignored = (
                    bool(self.cancel_ends_anyway_share)
                    and self.rng.random() < self.cancel_ends_anyway_share
                )
            return {}

    def _job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"TuningJob {name} not found.")
        return job

    def _validated(self, location: str, request: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
        """The request checked like the service checks it, with enums as names and int64 as strings."""
        request = _camel_keys(request)
        model = str(request.get("baseModel") or "")
        if not model:
            raise invalid("baseModel is required.")
        model_id = model.removeprefix("publishers/google/models/")
        rules = self.catalog.rules(model_id)
        if rules is None:
            raise invalid(f"Base model {model} is not supported for tuning.")
        if rules.regions and location not in rules.regions:
            raise invalid(
                f"Base model {model_id} cannot be tuned in location {location}; supported: {', '.join(sorted(rules.regions))}."
            )
        spec = request.get("supervisedTuningSpec")
        if not isinstance(spec, dict):
            raise invalid("supervisedTuningSpec is required.")
        training = str(spec.get("trainingDatasetUri") or "")
        if not training:
            raise invalid("supervisedTuningSpec.trainingDatasetUri is required.")
        for key in ("trainingDatasetUri", "validationDatasetUri"):
            uri = spec.get(key)
            if not uri:
                continue
            split_gs_uri(uri)
            if not uri.endswith(".jsonl"):
                raise invalid(f"supervisedTuningSpec.{key} {uri} must be a JSONL file (.jsonl).")
            if not self.store.exists(uri):
                raise invalid(
                    f"supervisedTuningSpec.{key} {uri} does not exist or is not readable."
                )
        hyper = dict(spec.get("hyperParameters") or {})
        # proto3: a zero is the same as an absent field (the service picks its default).
        epochs = _int_field(hyper, "epochCount", "supervisedTuningSpec.hyperParameters.epochCount")
        if epochs:
            if epochs < 0:
                raise invalid(
                    f"supervisedTuningSpec.hyperParameters.epochCount must be positive, got {epochs}."
                )
            hyper["epochCount"] = str(epochs)
        else:
            hyper.pop("epochCount", None)
        if "learningRateMultiplier" in hyper:
            rate = hyper["learningRateMultiplier"]
            if not isinstance(rate, int | float) or isinstance(rate, bool) or rate < 0:
                raise invalid(
                    f"supervisedTuningSpec.hyperParameters.learningRateMultiplier must be positive, got {rate!r}."
                )
            if rate == 0:
                del hyper["learningRateMultiplier"]
        if "adapterSize" in hyper:
            name = _enum_name(
                hyper["adapterSize"],
                ADAPTER_SIZE_ENUM,
                "supervisedTuningSpec.hyperParameters.adapterSize",
            )
            size = ADAPTER_SIZE_VALUE.get(name)
            if size is not None and size not in rules.adapter_sizes:
                allowed = ", ".join(str(s) for s in sorted(rules.adapter_sizes)) or "none"
                raise invalid(
                    f"Adapter size {size} ({name}) is not supported for {model_id}; supported: {allowed}."
                )
            if size is None:
                del hyper["adapterSize"]
            else:
                hyper["adapterSize"] = name
        labels = request.get("labels") or {}
        if not isinstance(labels, dict):
            raise invalid("labels must be a map of strings.")
        for key, value in labels.items():
            if not _LABEL_RE.match(str(key)) or not _LABEL_VALUE_RE.match(str(value)):
                raise invalid(
                    f"Label {key}={value} is invalid: keys and values are at most 63 lowercase letters, digits, '_' or '-'."
                )
        body: dict[str, Any] = {
            key: request[key]
            for key in (
                "baseModel",
                "tunedModelDisplayName",
                "description",
                "labels",
                "serviceAccount",
            )
            if request.get(key)
        }
        body["supervisedTuningSpec"] = {**spec, "hyperParameters": hyper}
        return body, training, epochs or 1


def _quota_error(message: str) -> ApiError:
    return ApiError(429, "RESOURCE_EXHAUSTED", message)


def parse_label_filter(text: str) -> dict[str, str]:
    """`labels.KEY=VALUE [AND labels.KEY2="VALUE2"]` -> {KEY: VALUE}; anything else is a 400."""
    wanted: dict[str, str] = {}
    text = text.strip()
    if not text:
        return wanted
    for term in re.split(r"\s+AND\s+", text):
        match = re.fullmatch(r'\s*labels\.([a-z0-9_-]+)\s*=\s*("?)([^"\s]*)\2\s*', term)
        if not match:
            raise invalid(
                f"Unsupported filter {term!r}: the emulator understands labels.KEY=VALUE joined by AND."
            )
        wanted[match.group(1)] = match.group(3)
    return wanted


def _enum_name(value: Any, names: dict[int, str], where: str) -> str:
    if isinstance(value, bool):
        raise invalid(f"{where}: invalid enum value {value!r}.")
    if isinstance(value, int):
        if value not in names:
            raise invalid(f"{where}: invalid enum value {value}.")
        return names[value]
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return _enum_name(int(value), names, where)
        if value not in names.values():
            raise invalid(f"{where}: invalid enum value {value!r}.")
        return value
    raise invalid(f"{where}: invalid enum value {value!r}.")


def _int_field(values: dict[str, Any], key: str, where: str) -> int | None:
    if key not in values:
        return None
    raw = values[key]
    if isinstance(raw, bool):
        raise invalid(f"{where} must be an integer, got {raw!r}.")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid(f"{where} must be an integer, got {raw!r}.") from None


def _camel_keys(node: Any) -> Any:
    """Proto JSON accepts snake_case field names too; labels keep their own keys."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
            out[camel] = value if camel == "labels" else _camel_keys(value)
        return out
    if isinstance(node, list):
        return [_camel_keys(item) for item in node]
    return node


def _rfc3339(stamp: float) -> str:
    return (
        datetime.fromtimestamp(stamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


# --- HTTP ---------------------------------------------------------------------------------------

_PARENT = r"/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/tuningJobs"
_ROUTES = [
    ("POST", re.compile(_PARENT + r"$"), "create"),
    ("GET", re.compile(_PARENT + r"$"), "list"),
    ("GET", re.compile(_PARENT + r"/(?P<job>[^/:]+)$"), "get"),
    ("POST", re.compile(_PARENT + r"/(?P<job>[^/:]+):cancel$"), "cancel"),
]


def make_handler(service: TuningEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(url.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            try:
                body = self._body()
                status, answer = self._route(method, path, query, body)
            except ApiError as exc:
                status, answer = exc.code, exc.body()
            except (
                Exception
            ) as exc:  # the emulator must answer, like the service, even on its own bug
                status, answer = (
                    500,
                    ApiError(500, "INTERNAL", f"emulator: {type(exc).__name__}: {exc}").body(),
                )
            self._send(status, answer)

        def _route(
            self, method: str, path: str, query: dict[str, str], body: Any
        ) -> tuple[int, Any]:
            if path == "/healthz" and method == "GET":
                return 200, {"status": "ok"}
            if path.startswith("/emulator/"):
                try:
                    return 200, control(service, method, path, body)
                except (TypeError, ValueError) as exc:
                    raise invalid(f"{path}: {exc}") from None
            for route_method, pattern, action in _ROUTES:
                match = pattern.match(path)
                if not match or route_method != method:
                    continue
                project, location = match["project"], match["location"]
                parent = f"projects/{project}/locations/{location}"
                service.inject(creating=action == "create", method=action)
                if action == "create":
                    if not isinstance(body, dict):
                        raise invalid("The request body must be a TuningJob JSON object.")
                    return 200, service.create(project, location, body)
                if action == "list":
                    size = query.get("pageSize", "0")
                    return 200, service.list(
                        parent,
                        query.get("filter", ""),
                        int(size) if size.isdigit() else 0,
                        query.get("pageToken", ""),
                    )
                if action == "get":
                    return 200, service.get(f"{parent}/tuningJobs/{match['job']}")
                return 200, service.cancel(f"{parent}/tuningJobs/{match['job']}")
            raise ApiError(404, "NOT_FOUND", f"No route for {method} {path}.")

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return None
            raw = self.rfile.read(length)
            try:
                return json.loads(raw)
            except ValueError:
                raise invalid("The request body is not valid JSON.") from None

        def _send(self, status: int, answer: Any) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def control(service: TuningEmulator, method: str, path: str, body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    if method == "POST" and path == "/emulator/fail-next":
        with service.lock:
            service.fail_next.append(
                str(
                    body.get("message")
                    or "emulator: job failed as asked by POST /emulator/fail-next"
                )
            )
    elif method == "POST" and path == "/emulator/faults":
        with service.lock:
            for key in _FAULT_RATES:
                if key in body:
                    setattr(service.faults, key, _rate(body[key], key))
            for key in _FAULT_COUNTS:
                if key in body:
                    setattr(service.faults, key, int(body[key]))
            for key in _FAULT_SECONDS:
                if key in body:
                    setattr(service.faults, key, _seconds(body[key], key))
    elif method == "POST" and path == "/emulator/config":
        with service.lock:
            if "quota" in body:
                service.quota = int(body["quota"])
            if "jobSeconds" in body:
                service.job_seconds = float(body["jobSeconds"])
            if "quotaScope" in body:
                if body["quotaScope"] not in {"project", "region"}:
                    raise ValueError(
                        f"quotaScope must be 'project' or 'region', got {body['quotaScope']!r}"
                    )
                service.quota_scope = body["quotaScope"]
            if "cancellingSeconds" in body:
                service.cancelling_seconds = _seconds(
                    body["cancellingSeconds"], "cancellingSeconds"
                )
            if "cancelEndsAnywayShare" in body:
                service.cancel_ends_anyway_share = _rate(
                    body["cancelEndsAnywayShare"], "cancelEndsAnywayShare"
                )
            if "reportState" in body:
                value = body["reportState"]
                service.report_state = None if value is None else int(value)
    elif not (method == "GET" and path == "/emulator/state"):
        raise ApiError(404, "NOT_FOUND", f"No route for {method} {path}.")
    with service.lock:
        now = service.clock()
        states: dict[str, int] = {}
        for job in service.jobs.values():
            state = str(job.state(now, service.report_state))
            states[state] = states.get(state, 0) + 1
        return {
            "quota": service.quota,
            "quotaScope": service.quota_scope,
            "cancellingSeconds": service.cancelling_seconds,
            "cancelEndsAnywayShare": service.cancel_ends_anyway_share,
            "reportState": service.report_state,
            "jobSeconds": service.job_seconds,
            "faults": vars(service.faults).copy(),
            "failNext": len(service.fail_next),
            "jobs": states,
        }


def _rate(value: Any, key: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise invalid(f"{key} must be between 0 and 1, got {value!r}.")
    return rate


def _seconds(value: Any, key: str) -> float:
    seconds = float(value)
    if seconds < 0:
        raise invalid(f"{key} must not be negative, got {value!r}.")
    return seconds


def make_server(
    service: TuningEmulator, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m autotune_local.tuning_emulator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--storage-endpoint", required=True, help="fake-gcs-server, e.g. http://127.0.0.1:4443"
    )
    parser.add_argument(
        "--quota", type=int, default=1, help="concurrent tuning jobs per project (default 1)"
    )
    parser.add_argument(
        "--quota-scope",
        choices=("project", "region"),
        default="project",
        help="the quota counts a project's jobs in every region (default, as Vertex AI) or per region",
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=15.0,
        help="time from create to the job's end (default 15)",
    )
    parser.add_argument(
        "--fault-rate-429", type=float, default=0.0, help="share of creates answered 429"
    )
    parser.add_argument(
        "--fault-rate-500", type=float, default=0.0, help="share of calls answered 500"
    )
    args = parser.parse_args(argv)
    service = TuningEmulator(
        store=FakeGcsStore(args.storage_endpoint),
        quota=args.quota,
        job_seconds=args.job_seconds,
        quota_scope=args.quota_scope,
        faults=Faults(
            rate429=_rate(args.fault_rate_429, "--fault-rate-429"),
            rate500=_rate(args.fault_rate_500, "--fault-rate-500"),
        ),
    )
    server = make_server(service, args.host, args.port)
    print(
        json.dumps(
            {
                "severity": "INFO",
                "message": f"tuning emulator listening on http://{args.host}:{server.server_port}",
            }
        ),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
