"""The message on tuning-requests: what validate hands to submit for one accepted dataset.

Schema-checked on both ends: validate builds it with `TuningRequest(...)` and publishes
`encode_request`; submit reads it only through `decode_request`, which raises
`InvalidTuningRequest` naming the bad field, so a malformed message is dead-lettered with a
reason instead of failing somewhere inside submit.
"""

from __future__ import annotations

import hashlib
import json

import msgspec

from autotune.settings import TuningSettings

SCHEMA_VERSION = 1
# What validate publishes is about 2 KB; anything much larger was not published by validate, and
# every field of it would travel on into ledger records and events.
MAX_REQUEST_BYTES = 64 * 1024


class InvalidTuningRequest(ValueError):
    """A tuning-requests message that is not a valid TuningRequest."""


class DatasetRef(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str
    object: str
    generation: str
    sha256: str  # of the object's bytes, computed while validating
    size: int
    # The copy of exactly the validated bytes (same bucket) that the job reads; the uploaded
    # object may be overwritten at any time after validation.
    pinned_object: str | None = None
    pinned_generation: str | None = None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.object}"

    @property
    def training_uri(self) -> str:
        """What the tuning job reads: the pinned copy."""
        return f"gs://{self.bucket}/{self.pinned_object or self.object}"


class TuningRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: int = SCHEMA_VERSION
    idempotency_key: str
    content_key: str
    training: DatasetRef
    validation: DatasetRef | None = None
    settings: TuningSettings
    report_uri: str
    force: bool = False  # the object carried autotune-force: tune again even if seen before
    example_count: int = 0
    estimated_billable_tokens: int = 0
    requested_at: str  # RFC 3339, when validate accepted the dataset
    # The upload that started the work (the manifest, or the dataset itself): queue order.
    trigger_object: str = ""
    trigger_generation: str = ""

    @property
    def dataset_uri(self) -> str:
        return self.training.uri


def content_key(
    training_sha256: str, validation_sha256: str | None, settings: TuningSettings
) -> str:
    """Same bytes + same settings -> same key, whatever the object's name or generation."""
    material = json.dumps(
        {
            "training": training_sha256,
            "validation": validation_sha256,
            "settings": settings.fingerprint_fields(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def idempotency_key(bucket: str, object_name: str, generation: str, content: str) -> str:
    """One key per dataset version; short lowercase hex so it fits a Vertex AI label (<= 63)."""
    material = json.dumps([bucket, object_name, generation, content])
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def encode_request(request: TuningRequest) -> bytes:
    return msgspec.json.encode(request)


def decode_request(data: bytes) -> TuningRequest:
    if len(data) > MAX_REQUEST_BYTES:
        raise InvalidTuningRequest(
            f"tuning request is {len(data)} bytes; at most {MAX_REQUEST_BYTES} are read"
        )
    try:
        request = msgspec.json.decode(data, type=TuningRequest)
    except msgspec.ValidationError as exc:
        raise InvalidTuningRequest(f"tuning request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidTuningRequest(f"tuning request is not JSON: {exc}") from exc
    if request.schema_version != SCHEMA_VERSION:
        raise InvalidTuningRequest(
            f"tuning request: schema_version {request.schema_version} is not {SCHEMA_VERSION}"
        )
    return request


def request_json_schema() -> dict:
    return msgspec.json.schema(TuningRequest)
