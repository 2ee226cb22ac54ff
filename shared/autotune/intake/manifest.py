"""Manifests and settings: the `.tuning.json` shape, the settings layers, and the bounds on every
text a manifest or metadata hands on into records and events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotune.config import PipelineConfig
from autotune.settings import TuningSettings

MANIFEST_MAX_BYTES = 64 * 1024
MANIFEST_SETTINGS = (
    "model",
    "epochs",
    "adapter_size",
    "learning_rate_multiplier",
    "region",
    "display_name",
)
# Every text a manifest or metadata hands on (object names, model, region, display name) ends
# up in ledger records and events: bounded here, so no record grows towards Firestore's 1 MiB.
TEXT_LIMIT_CHARS = 1024
DISPLAY_NAME_LIMIT_CHARS = 128  # Vertex AI's tunedModelDisplayName limit


class InvalidManifest(ValueError):
    pass


class UnusableText(InvalidManifest):
    """A manifest string that no report, record or event could carry (UNUSABLE_TEXT)."""


@dataclass(frozen=True)
class Manifest:
    training: str
    validation: str | None
    settings: Mapping[str, Any]


def parse_manifest(data: bytes, *, bucket: str) -> Manifest:
    if len(data) > MANIFEST_MAX_BYTES:
        raise InvalidManifest(
            f"the manifest is {len(data)} bytes; at most {MANIFEST_MAX_BYTES} are read"
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"the manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("the manifest must be a JSON object")
    problem = unusable_text_in(doc)
    if problem:
        raise UnusableText(problem)
    unknown = sorted(set(doc) - {"training", "validation", "settings"})
    if unknown:
        raise InvalidManifest(
            f"unknown key(s) {', '.join(unknown)}; expected training, validation, settings"
        )
    if "training" not in doc:
        raise InvalidManifest('"training" is missing: name the training file')
    training = object_name_in_bucket(doc["training"], bucket, what="training")
    validation = (
        object_name_in_bucket(doc["validation"], bucket, what="validation")
        if doc.get("validation") is not None
        else None
    )
    settings = doc.get("settings")
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise InvalidManifest('"settings" must be an object')
    unknown = sorted(set(settings) - set(MANIFEST_SETTINGS))
    if unknown:
        raise InvalidManifest(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(MANIFEST_SETTINGS)}"
        )
    return Manifest(training=training, validation=validation, settings=settings)


def object_name_in_bucket(value: object, bucket: str, *, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidManifest(f'"{what}" must be an object name (text)')
    value = value.strip()
    if value.startswith("gs://"):
        named_bucket, _, name = value[len("gs://") :].partition("/")
        if named_bucket != bucket:
            raise InvalidManifest(
                f'"{what}": {value} is in bucket {named_bucket}; name an object of bucket {bucket}'
            )
        value = name
    if not value or value.endswith("/"):
        raise InvalidManifest(f'"{what}": {value!r} is not an object name')
    return value


def text_problem(text: str, *, limit: int = TEXT_LIMIT_CHARS) -> str | None:
    """Why `text` cannot travel through reports, records and events, or None."""
    if len(text) > limit:
        return f"is {len(text)} characters long; at most {limit} are allowed"
    for index, char in enumerate(text):
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"holds a lone surrogate (U+{code:04X}) at character {index}: not encodable as UTF-8"
        if code < 0x20 or 0x7F <= code < 0xA0:
            return f"holds the control character U+{code:04X} at character {index}"
    return None


def unusable_text_in(doc: object, where: str = "") -> str | None:
    """The first string (key or value) of a JSON document that `text_problem` refuses."""
    if isinstance(doc, str):
        limit = DISPLAY_NAME_LIMIT_CHARS if where.endswith("display_name") else TEXT_LIMIT_CHARS
        problem = text_problem(doc, limit=limit)
        return f"{where or 'the value'} {problem}" if problem else None
    if isinstance(doc, dict):
        for key, value in doc.items():
            problem = text_problem(key, limit=64)
            if problem:
                return f"a key of {where or 'the manifest'} {problem}"
            problem = unusable_text_in(value, f"{where}.{key}" if where else f'"{key}"')
            if problem:
                return problem
    if isinstance(doc, list):
        for index, value in enumerate(doc):
            problem = unusable_text_in(value, f"{where}[{index}]")
            if problem:
                return problem
    return None


def unusable_metadata(metadata: Mapping[str, str]) -> str | None:
    """The first autotune-* metadata value (the ones that become settings) that cannot travel."""
    for key, value in metadata.items():
        if not key.startswith("autotune-"):
            continue
        limit = DISPLAY_NAME_LIMIT_CHARS if key == "autotune-display-name" else TEXT_LIMIT_CHARS
        problem = text_problem(key, limit=64) or text_problem(value, limit=limit)
        if problem:
            return f"metadata {ascii(key[:64])} {problem}"
    return None


def resolve_settings(
    config: PipelineConfig, manifest: Manifest | None, metadata: Mapping[str, str]
) -> TuningSettings:
    settings = TuningSettings.from_defaults(config.defaults)
    if manifest is not None:
        settings = settings.overridden_by(
            {**manifest.settings, "validation_object": manifest.validation}
        )
    return settings.overridden_by_metadata(metadata)
