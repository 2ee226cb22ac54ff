"""What happens when an object lands in the bucket: the validate function's core.

Which objects are datasets (only under the incoming prefix):
- `NAME.jsonl` is a dataset by itself: its own training file, settings from its metadata;
- `NAME.tuning.json` is a manifest naming the training (and validation) objects and settings;
- a `.jsonl` inside a `parts/` folder (e.g. `incoming/support/parts/train.jsonl`) is left to the
  manifest or `autotune-validation` reference that names it, so it is never tuned on its own;
- anything else (reports, tuned outputs, folders, other files) is ignored.

A manifest, at most 64 KiB of JSON:
    {"training": "incoming/support/parts/train.jsonl",           required
     "validation": "incoming/support/parts/validation.jsonl",     optional
     "settings": {"model": "gemini-3.5-flash", "epochs": 4}}      optional: TuningSettings fields
Object names are in the manifest's bucket (a `gs://` URI of that bucket is accepted too).

Settings, later layers winning: deployment defaults, the manifest's settings, the triggering
object's metadata (`autotune-model`, ...). The report of one upload goes to
`<reports prefix><uploaded object>/<generation>.json`. The dataset an event speaks of is the
training file (a manifest's events carry the training file's URI and generation), except when a
manifest cannot be used at all: then the manifest itself.

The core talks to storage and Pub/Sub through the two small protocols below; the validate
function hands it the Google-backed adapters, unit tests in-memory ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from autotune.config import PipelineConfig
from autotune.events import EventPayload, EventType, TuningEvent, make_event
from autotune.settings import TuningSettings, is_forced
from autotune.tuning_request import DatasetRef, TuningRequest, content_key, idempotency_key

DATASET_SUFFIX = ".jsonl"
MANIFEST_SUFFIX = ".tuning.json"
PARTS_FOLDER = "parts"
MANIFEST_MAX_BYTES = 64 * 1024
# Cloud Storage names and Pub/Sub attribute values stop at 1024 bytes (UTF-8). A dataset whose
# report name or gs:// URI (the ce-subject of every event) is longer could never be reported on
# or announced: every publish would fail and the upload would be retried into the dead-letter topic.
NAME_LIMIT_BYTES = 1024
MANIFEST_SETTINGS = ("model", "epochs", "adapter_size", "learning_rate_multiplier", "region", "display_name")

# Metadata on every report object: "true" (accepted) or "false" (rejected).
REPORT_VALID_METADATA = "autotune-valid"
# In an accepted report: the keys of the request validate published for it, so submit acts only
# on that request (autotune.request_checks).
REPORT_REQUEST_FIELD = "accepted_request"
# In an accepted report of a split upload: the fraction, the counts, the limits applied, the files.
SPLIT_REPORT_FIELD = "validation_split"

# Problems found before any line is read, reported in the validator's report shape:
# the manifest is not JSON of the documented shape, or names an object of another bucket;
INVALID_MANIFEST = "invalid_manifest"
# a file the manifest or the autotune-validation metadata names does not exist in the bucket;
OBJECT_NOT_FOUND = "object_not_found"
# a dataset stored with a Content-Encoding (gzip, ...): what a reader gets is not what is stored,
# and its size says nothing of the decompressed size, so limits and checksums would not hold;
CONTENT_ENCODED = "content_encoded"
# text a manifest or the autotune-* metadata carries that no record, event or report can hold:
# a lone surrogate (\ud800 is valid JSON, not encodable UTF-8), a control character, or more
# than TEXT_LIMIT_CHARS characters.
UNUSABLE_TEXT = "unusable_text"
# the autotune-validation-split metadata is not a fraction in [0, 1), or asks for a split of an
# upload that already names its validation file (autotune-validation);
INVALID_VALIDATION_SPLIT = "invalid_validation_split"
# The split holds the whole training file and its two halves in memory: bounded well under the
# validate function's 512 MiB, so a large file is refused with a way forward instead of a crash.
SPLIT_MAX_BYTES = 64 * 1024 * 1024
# an example's fileData names one of the pipeline's own objects (a report, a pinned copy, a
# manifest or a dataset under the incoming prefix): media, not training data or verdicts.
MEDIA_IS_PIPELINE_OBJECT = "media_is_pipeline_object"
# Every text a manifest or metadata hands on (object names, model, region, display name) ends
# up in ledger records and events: bounded here, so no record grows towards Firestore's 1 MiB.
TEXT_LIMIT_CHARS = 1024
DISPLAY_NAME_LIMIT_CHARS = 128  # Vertex AI's tunedModelDisplayName limit

# Validated bytes are copied here, named by their sha256, and the job reads the copy: an overwrite
# of the uploaded object after validation cannot change what a queued or submitting job trains on.
PINNED_FOLDER = "pinned/"

# A training file uploaded alone may ask for a validation split (or the deployment's
# validation_split default does): the two halves are written under PARTS_FOLDER beside the upload,
# named by its generation, so a second delivery of the same upload finds the same files.
VALIDATION_SPLIT_METADATA = "autotune-validation-split"
SPLIT_TRAINING_FILE = "training.jsonl"
SPLIT_VALIDATION_FILE = "validation.jsonl"


class UnreadableEvent(ValueError):
    """The storage event does not say which object version it is about."""


class ObjectGone(LookupError):
    """The object (at that generation) no longer exists: a newer upload replaced it, or it was deleted."""


class InvalidManifest(ValueError):
    pass


class UnusableText(InvalidManifest):
    """A manifest string that no report, record or event could carry (UNUSABLE_TEXT)."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    name: str
    generation: str
    size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Content-Encoding as stored ("" for none). Reads are raw (never decompressed), so the
    # report's sha256 covers the stored bytes; an encoded object is refused (CONTENT_ENCODED).
    content_encoding: str = ""

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class DatasetStore(Protocol):
    def stat(self, name: str) -> StoredObject | None: ...
    # Both read the stored bytes as they are (no decompressive transcoding).
    def read_chunks(self, name: str, generation: str) -> Iterator[bytes]: ...  # lazy; raises ObjectGone
    def read_bytes(self, name: str, generation: str) -> bytes: ...  # small objects; raises ObjectGone
    # A copy of exactly that generation under `pinned_name` (server-side, so the bytes are the
    # ones validated); an existing copy with the same checksums is kept as is. Raises ObjectGone
    # when that generation was replaced or deleted meanwhile.
    def pin(self, name: str, generation: str, pinned_name: str) -> StoredObject: ...
    # `data` under `name` unless an object of exactly these bytes is already there (then that one
    # is returned as it is, same generation): the split files of one upload are written once.
    def write_split_file(self, name: str, data: bytes) -> StoredObject: ...
    # `valid` goes into the report object's metadata (REPORT_VALID_METADATA), so reconciliation
    # tells accepted from rejected uploads by listing the reports, without reading each one.
    def write_report(self, name: str, data: bytes, *, valid: bool) -> None: ...
    # The report's HTML page (text/html), written just before the JSON report it shows.
    def write_html_report(self, name: str, data: bytes) -> None: ...


class EventBus(Protocol):
    def publish_request(self, request: TuningRequest) -> None: ...  # returns once Pub/Sub has it
    def publish_event(self, event: TuningEvent) -> None: ...


@dataclass(frozen=True)
class Manifest:
    training: str
    validation: str | None
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """One decision, for one structured log line."""

    decision: str  # ignored | superseded | accepted | rejected
    message: str
    dataset: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "INFO"


# --- pure rules -------------------------------------------------------------------------------


def stored_object_from_event(data: object) -> StoredObject:
    """The object of a `google.cloud.storage.object.v1.*` CloudEvent's data (a JSON API object)."""
    if not isinstance(data, Mapping):
        raise UnreadableEvent(f"event data is {type(data).__name__}, not a storage object")
    bucket, name, generation = data.get("bucket"), data.get("name"), data.get("generation")
    if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or not name:
        raise UnreadableEvent("event data has no bucket and object name")
    if generation is None or not str(generation).isdigit():
        raise UnreadableEvent(f"event data for {name!r} has no numeric generation")
    size = data.get("size")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise UnreadableEvent(f"event data for {name!r} has metadata that is not a map")
    return StoredObject(
        bucket=bucket,
        name=name,
        generation=str(generation),
        size=int(size) if size is not None and str(size).isdigit() else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
        content_encoding=str(data.get("contentEncoding") or ""),
    )


def classify(object_name: str, incoming_prefix: str, reports_prefix: str = "") -> tuple[str, str]:
    """("dataset" | "manifest" | "ignored", why)."""
    if not object_name.startswith(incoming_prefix):
        return "ignored", f"outside {incoming_prefix}"
    if reports_prefix and object_name.startswith(reports_prefix):
        return "ignored", f"the pipeline's own output under {reports_prefix}"
    if object_name.endswith("/"):
        return "ignored", "a folder placeholder"
    if object_name.endswith(MANIFEST_SUFFIX):
        return "manifest", "a manifest"
    if object_name.endswith(DATASET_SUFFIX):
        folders = object_name[len(incoming_prefix):].split("/")[:-1]
        if PARTS_FOLDER in folders:
            return "ignored", f"in a {PARTS_FOLDER}/ folder: left to the manifest that names it"
        return "dataset", "a dataset"
    return "ignored", f"not a dataset ({DATASET_SUFFIX}) or a manifest ({MANIFEST_SUFFIX})"


def parse_manifest(data: bytes, *, bucket: str) -> Manifest:
    if len(data) > MANIFEST_MAX_BYTES:
        raise InvalidManifest(f"the manifest is {len(data)} bytes; at most {MANIFEST_MAX_BYTES} are read")
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
        raise InvalidManifest(f"unknown key(s) {', '.join(unknown)}; expected training, validation, settings")
    if "training" not in doc:
        raise InvalidManifest('"training" is missing: name the training file')
    training = object_name_in_bucket(doc["training"], bucket, what="training")
    validation = object_name_in_bucket(doc["validation"], bucket, what="validation") if doc.get("validation") is not None else None
    settings = doc.get("settings")
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise InvalidManifest('"settings" must be an object')
    unknown = sorted(set(settings) - set(MANIFEST_SETTINGS))
    if unknown:
        raise InvalidManifest(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(MANIFEST_SETTINGS)}")
    return Manifest(training=training, validation=validation, settings=settings)


def object_name_in_bucket(value: object, bucket: str, *, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidManifest(f'"{what}" must be an object name (text)')
    value = value.strip()
    if value.startswith("gs://"):
        named_bucket, _, name = value[len("gs://"):].partition("/")
        if named_bucket != bucket:
            raise InvalidManifest(f'"{what}": {value} is in bucket {named_bucket}; name an object of bucket {bucket}')
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


def name_unusable(name: str) -> str | None:
    """An object name that cannot even be written into a report's name (only a forged event has one)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return "the object name is not encodable as UTF-8"
    return None


def pinned_object_name(reports_prefix: str, sha256: str) -> str:
    return f"{reports_prefix}{PINNED_FOLDER}{sha256}{DATASET_SUFFIX}"


def resolve_settings(config: PipelineConfig, manifest: Manifest | None, metadata: Mapping[str, str]) -> TuningSettings:
    settings = TuningSettings.from_defaults(config.defaults)
    if manifest is not None:
        settings = settings.overridden_by({**manifest.settings, "validation_object": manifest.validation})
    return settings.overridden_by_metadata(metadata)


def name_too_long(uri: str, report_name: str) -> str | None:
    """Why a dataset's names cannot be used (see NAME_LIMIT_BYTES), or None."""
    for what, text in (("its gs:// URI (the ce-subject of its events)", uri), ("its report's object name", report_name)):
        size = len(text.encode())
        if size > NAME_LIMIT_BYTES:
            return f"{what} would be {size} bytes; at most {NAME_LIMIT_BYTES} are allowed"
    return None


class InvalidValidationSplit(ValueError):
    pass


def validation_split_fraction(metadata: Mapping[str, str], default: float, *, alone: bool) -> float:
    """The fraction of a training file to draw into a validation file (0: no split).
    `alone`: the upload is a training file with no validation file named."""
    text = metadata.get(VALIDATION_SPLIT_METADATA)
    if text is None:
        if not 0.0 <= default < 1.0:
            raise InvalidValidationSplit(f"the deployment's validation_split (deploy/config.toml, AUTOTUNE_VALIDATION_SPLIT) "
                                         f"is {default}; it must be a fraction from 0 (no split) up to, not including, 1")
        return default if alone else 0.0
    try:
        fraction = float(text.strip())
    except ValueError:
        fraction = -1.0
    if not 0.0 <= fraction < 1.0:  # also refuses nan and inf
        raise InvalidValidationSplit(f"metadata {VALIDATION_SPLIT_METADATA} is {ascii(text[:64])}; give a fraction "
                                     "from 0 (no split) up to, not including, 1, e.g. 0.1")
    if fraction and not alone:
        raise InvalidValidationSplit(f"metadata {VALIDATION_SPLIT_METADATA} splits a training file uploaded alone; this "
                                     "upload already names its validation file (or is a manifest): drop one of the two")
    return fraction


def split_object_names(object_name: str, generation: str) -> tuple[str, str]:
    """Where the split of one upload generation goes: beside it, in a parts/ folder the intake ignores."""
    folder, _, base = object_name.rpartition("/")
    stem = base.removesuffix(DATASET_SUFFIX)
    where = f"{folder}/{PARTS_FOLDER}/{stem}/{generation}/" if folder else f"{PARTS_FOLDER}/{stem}/{generation}/"
    return where + SPLIT_TRAINING_FILE, where + SPLIT_VALIDATION_FILE


@dataclass(frozen=True)
class SplitFiles:
    training: bytes
    validation: bytes
    plan: Any  # autotune.preparation.SplitPlan


def split_dataset(data: bytes, fraction: float, *, max_validation_examples: int, model: str) -> SplitFiles:
    """The lines of a JSONL file drawn into training and validation by their content, with the
    split `autotune prepare` makes: the same file always gives the same two files."""
    from autotune.preparation import content_hash, split_plan

    lines = [line.strip() for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n")]
    lines = [line for line in lines if line]
    hashes = [content_hash(line) for line in lines]
    plan = split_plan(hashes, fraction, max_validation_examples=max_validation_examples, model=model)
    training = b"".join(line + b"\n" for line, h in zip(lines, hashes, strict=True) if h >= plan.threshold)
    validation = b"".join(line + b"\n" for line, h in zip(lines, hashes, strict=True) if h < plan.threshold)
    return SplitFiles(training=training, validation=validation, plan=plan)


def report_object_name(reports_prefix: str, object_name: str, generation: str) -> str:
    return f"{reports_prefix}{object_name}/{generation}.json"


def intake_report(settings: TuningSettings, code: str, message: str, *, field: str | None = None) -> dict:
    """A rejection report, shaped like the validator's, for a problem found before reading lines."""
    return {
        "valid": False,
        "model": str(settings.model),
        "files": {},
        "errors": [{"file": None, "role": None, "line": None, "code": code, "severity": "error", "field": field,
                    "message": message}],
        "counts": {code: 1},
        "totals": {"errors": 1, "warnings": 0},
        "stats": {},
        "cost_estimate": {},
    }


# --- one upload, start to end -----------------------------------------------------------------


ValidateFn = Callable[..., Any]  # autotune.validation.validate_dataset (imported by the caller)
SourceFactory = Callable[..., Any]  # autotune.validation.DatasetSource


@dataclass(frozen=True)
class IntakeDeps:
    store: DatasetStore
    bus: EventBus
    validate_dataset: ValidateFn
    dataset_source: SourceFactory
    media: Any = None  # a MediaInspector
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def process_upload(uploaded: StoredObject, config: PipelineConfig, deps: IntakeDeps) -> Outcome:
    kind, why = classify(uploaded.name, config.incoming_prefix, config.reports_prefix)
    if kind != "ignored" and uploaded.bucket != config.bucket:
        kind, why = "ignored", f"bucket {uploaded.bucket} is not the dataset bucket {config.bucket}"
    if kind == "ignored":
        return Outcome("ignored", f"not a dataset: {why}", uploaded.uri, {"generation": uploaded.generation})
    unusable = name_unusable(uploaded.name)
    if unusable:
        return Outcome("rejected", f"dataset rejected without a report or an event: {unusable}", ascii(uploaded.uri),
                       {"generation": uploaded.generation}, "ERROR")
    report_name = report_object_name(config.reports_prefix, uploaded.name, uploaded.generation)
    too_long = name_too_long(uploaded.uri, report_name)
    if too_long:
        return Outcome("rejected", f"dataset rejected without a report or an event, rename it: {too_long}", uploaded.uri,
                       {"generation": uploaded.generation, "name_bytes": len(uploaded.name.encode())}, "ERROR")
    verdict = Verdict(uploaded, uploaded, report_name, f"gs://{uploaded.bucket}/{report_name}")
    try:
        return _decide(uploaded, kind, config, deps, verdict)
    except ObjectGone as exc:
        return Outcome("superseded", f"object changed while being read, left to the newer upload: {exc}", uploaded.uri,
                       {"generation": uploaded.generation}, "WARNING")


@dataclass
class Verdict:
    uploaded: StoredObject
    dataset: StoredObject  # the training file once known; the upload itself until then
    report_name: str
    report_uri: str


def _decide(uploaded: StoredObject, kind: str, config: PipelineConfig, deps: IntakeDeps, verdict: Verdict) -> Outcome:
    manifest = None
    unusable = unusable_metadata(uploaded.metadata)
    if unusable:
        settings = TuningSettings.from_defaults(config.defaults)
        return _reject(verdict, intake_report(settings, UNUSABLE_TEXT, f"{uploaded.uri}: {unusable}", field="metadata"), deps)
    if kind == "manifest":
        settings = resolve_settings(config, None, uploaded.metadata)
        try:
            if uploaded.size is not None and uploaded.size > MANIFEST_MAX_BYTES:
                raise InvalidManifest(f"the manifest is {uploaded.size} bytes; at most {MANIFEST_MAX_BYTES} are read")
            manifest = parse_manifest(deps.store.read_bytes(uploaded.name, uploaded.generation), bucket=uploaded.bucket)
        except UnusableText as exc:
            return _reject(verdict, intake_report(settings, UNUSABLE_TEXT, f"{uploaded.uri}: {exc}"), deps)
        except InvalidManifest as exc:
            return _reject(verdict, intake_report(settings, INVALID_MANIFEST, f"{uploaded.uri}: {exc}"), deps)
        if manifest.training.startswith(config.reports_prefix) or (manifest.validation or "").startswith(config.reports_prefix):
            message = f"{uploaded.uri}: names an object under {config.reports_prefix}, the pipeline's own output"
            return _reject(verdict, intake_report(settings, INVALID_MANIFEST, message), deps)
        found = deps.store.stat(manifest.training)
        if found is None:
            message = f"{uploaded.uri}: training file gs://{uploaded.bucket}/{manifest.training} does not exist"
            return _reject(verdict, intake_report(settings, OBJECT_NOT_FOUND, message, field="training"), deps)
        if len(found.uri.encode()) > NAME_LIMIT_BYTES:
            message = f"{uploaded.uri}: the training file's gs:// URI is {len(found.uri.encode())} bytes; events carry it in a Pub/Sub attribute of at most {NAME_LIMIT_BYTES}"
            return _reject(verdict, intake_report(settings, INVALID_MANIFEST, message, field="training"), deps)
        verdict.dataset = found
    training = verdict.dataset
    settings = resolve_settings(config, manifest, uploaded.metadata)
    validation = None
    if settings.validation_object:
        try:
            name = object_name_in_bucket(settings.validation_object, uploaded.bucket, what="validation")
            if name.startswith(config.reports_prefix):
                raise InvalidManifest(f"validation file {name} is under {config.reports_prefix}, the pipeline's own output")
            validation = deps.store.stat(name)
            problem = None if validation else f"validation file gs://{uploaded.bucket}/{name} does not exist"
        except InvalidManifest as exc:
            problem = str(exc)
        if problem:
            return _reject(verdict, intake_report(settings, OBJECT_NOT_FOUND, f"{uploaded.uri}: {problem}", field="validation_object"), deps)
    try:
        fraction = validation_split_fraction(uploaded.metadata, config.validation_split,
                                             alone=kind == "dataset" and validation is None)
        longest = max(len(f"gs://{training.bucket}/{name}".encode()) for name in split_object_names(training.name, training.generation))
        if fraction and longest > NAME_LIMIT_BYTES:
            raise InvalidValidationSplit(f"a split file's gs:// URI (the ce-subject of the events) would be {longest} bytes; at "
                                         f"most {NAME_LIMIT_BYTES} are allowed: shorten the upload's name, or upload a "
                                         "validation file and name it (autotune-validation)")
        if fraction and (training.size or 0) > SPLIT_MAX_BYTES:
            raise InvalidValidationSplit(f"the pipeline splits files of at most {SPLIT_MAX_BYTES:,} bytes (it holds the file in "
                                         f"memory) and this one has {training.size:,}: split it with `autotune prepare "
                                         "--validation-split`, upload both and name the validation file (autotune-validation)")
    except InvalidValidationSplit as exc:
        message = f"{uploaded.uri}: {exc}"
        return _reject(verdict, intake_report(settings, INVALID_VALIDATION_SPLIT, message, field="metadata"), deps)
    encoded = _content_encoded(training, validation)
    if encoded:
        return _reject(verdict, intake_report(settings, CONTENT_ENCODED, f"{uploaded.uri}: {encoded}"), deps)
    media = OwnObjectsRefused(deps.media, config) if deps.media is not None else None

    def validated(training: StoredObject, validation: StoredObject | None) -> Any:
        return deps.validate_dataset(
            _source(deps, training),
            settings=settings,
            validation=_source(deps, validation) if validation else None,
            media=media,
            dataset_bucket=uploaded.bucket,
            allowed_media_buckets=config.allowed_media_buckets,
            prices=config.prices,
        )

    report = validated(training, validation)
    split_summary: dict[str, Any] | None = None
    for _ in range(2):  # the upload as it is, then (when it is split) its two halves
        if media is not None and media.refused:
            return _reject(verdict, media.rewritten(report.to_dict()), deps, error_count=report.error_count,
                           warning_count=report.warning_count)
        if not report.valid:
            return _reject(verdict, report.to_dict(), deps, error_count=report.error_count, warning_count=report.warning_count)
        if not fraction or split_summary is not None:
            break
        # Split only once the upload is valid as a whole: its errors name its own lines.
        split, parts = _split(training, fraction, str(settings.model), deps)
        split_summary = {"fraction": fraction, "validation_examples": split.plan.validation,
                         "training_examples": split.plan.training, "drawn_before_limits": split.plan.asked,
                         "limits_applied": list(split.plan.limits)}
        if parts is None:
            split_summary["files"] = None  # nothing drawn (a small file): tuned without a validation set
            break
        training, validation = parts
        verdict.dataset = training
        split_summary["files"] = {"training": training.uri, "validation": validation.uri}
        report = validated(training, validation)
    # Pinned before the report says valid: a copy of the very generation read, so what the job
    # reads is what the report's sha256 covers, whatever happens to the uploaded name later.
    pinned_training = deps.store.pin(training.name, training.generation,
                                     pinned_object_name(config.reports_prefix, report.files["train"].sha256))
    pinned_validation = None
    if validation is not None:
        pinned_validation = deps.store.pin(validation.name, validation.generation,
                                           pinned_object_name(config.reports_prefix, report.files["validation"].sha256))
    encoded = _content_encoded(pinned_training, pinned_validation)
    if encoded:  # the encoding was set on that generation after it was read (a metadata patch)
        return _reject(verdict, intake_report(settings, CONTENT_ENCODED, f"{uploaded.uri}: {encoded}"), deps)
    request = build_request(uploaded, training, validation, settings, report, verdict.report_uri, deps.now(),
                            pinned_training=pinned_training, pinned_validation=pinned_validation)
    accepted = {"idempotency_key": request.idempotency_key, "content_key": request.content_key}
    doc = {**report.to_dict(), REPORT_REQUEST_FIELD: accepted}
    if split_summary is not None:
        doc[SPLIT_REPORT_FIELD] = split_summary
    _write_reports(deps, verdict, doc, valid=True)
    # The request first: an "accepted" event must never announce a job nobody was asked to run.
    deps.bus.publish_request(request)
    event = make_event(
        EventType.DATASET_ACCEPTED,
        EventPayload(
            dataset_uri=training.uri, generation=training.generation, idempotency_key=request.idempotency_key,
            report_uri=verdict.report_uri, valid=True, error_count=report.error_count, warning_count=report.warning_count,
            counts=dict(report.counts) or None, model=str(settings.model),
        ),
        discriminator=_discriminator(verdict),
        now=deps.now(),
    )
    deps.bus.publish_event(event)
    return Outcome("accepted", "dataset accepted", training.uri, {
        "generation": training.generation, "trigger": uploaded.uri, "report": verdict.report_uri,
        "idempotency_key": request.idempotency_key, "examples": report.example_count, "warnings": report.warning_count,
        "model": str(settings.model), "force": request.force, "pinned": pinned_training.uri,
        **({"validation_split": split_summary} if split_summary is not None else {}),
    })


def _split(training: StoredObject, fraction: float, model: str,
           deps: IntakeDeps) -> tuple[SplitFiles, tuple[StoredObject, StoredObject] | None]:
    from autotune.catalog import get_model

    spec = get_model(model)  # the report just found it valid, so the model is in the catalog
    assert spec is not None
    split = split_dataset(deps.store.read_bytes(training.name, training.generation), fraction,
                          max_validation_examples=spec.max_validation_examples, model=spec.name)
    if not split.plan.validation:
        return split, None
    training_name, validation_name = split_object_names(training.name, training.generation)
    return split, (deps.store.write_split_file(training_name, split.training),
                   deps.store.write_split_file(validation_name, split.validation))


class OwnObjectsRefused:
    """The media inspector, except that the pipeline's own objects are not media: they are
    answered as missing to the validator, and the report then names them for what they are."""

    def __init__(self, inner: Any, config: PipelineConfig) -> None:
        self.inner, self.config = inner, config
        self.refused: set[str] = set()

    def is_own(self, uri: str) -> bool:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or bucket != self.config.bucket:
            return False
        if name.startswith(self.config.reports_prefix):
            return True
        return name.startswith(self.config.incoming_prefix) and name.endswith((DATASET_SUFFIX, MANIFEST_SUFFIX))

    def stat(self, uris: Any) -> dict[str, int | None]:
        uris = list(uris)
        own = {uri for uri in uris if self.is_own(uri)}
        self.refused |= own
        sizes = dict(self.inner.stat([uri for uri in uris if uri not in own]))
        sizes.update(dict.fromkeys(own))
        return sizes

    def rewritten(self, doc: dict) -> dict:
        """The validator's report with the refused URIs' "does not exist" told as what they are."""
        moved = 0
        for issue in doc.get("errors", []):
            uri = next((u for u in self.refused if str(issue.get("message", "")).startswith(f"{u} does not exist")), None)
            if uri is not None and issue.get("code") == "file_not_found":
                moved += 1
                issue["code"] = MEDIA_IS_PIPELINE_OBJECT
                issue["message"] = (f"{uri} is one of the pipeline's own objects (a report, a pinned copy, a manifest or a "
                                    "dataset), not media an example may reference")
        counts = dict(doc.get("counts") or {})
        if moved:
            left = counts.get("file_not_found", 0) - moved
            counts = {code: n for code, n in counts.items() if code != "file_not_found"}
            if left > 0:
                counts["file_not_found"] = left
            counts[MEDIA_IS_PIPELINE_OBJECT] = moved
        doc["counts"] = counts
        doc["valid"] = False
        return doc


def _content_encoded(*objects: StoredObject | None) -> str | None:
    for obj in objects:
        if obj is not None and obj.content_encoding and obj.content_encoding.lower() != "identity":
            return (f"{obj.uri} is stored with Content-Encoding: {obj.content_encoding[:64]}; upload it uncompressed "
                    "(limits and checksums apply to the bytes as stored)")
    return None


def build_request(
    uploaded: StoredObject, training: StoredObject, validation: StoredObject | None, settings: TuningSettings,
    report: Any, report_uri: str, now: datetime, *, pinned_training: StoredObject | None = None,
    pinned_validation: StoredObject | None = None,
) -> TuningRequest:
    train_file = report.files["train"]
    validation_file = report.files.get("validation") if validation else None
    content = content_key(train_file.sha256, validation_file.sha256 if validation_file else None, settings)
    return TuningRequest(
        idempotency_key=idempotency_key(training.bucket, training.name, training.generation, content),
        content_key=content,
        training=DatasetRef(bucket=training.bucket, object=training.name, generation=training.generation,
                            sha256=train_file.sha256, size=train_file.size, **_pinned_fields(pinned_training)),
        validation=DatasetRef(bucket=validation.bucket, object=validation.name, generation=validation.generation,
                              sha256=validation_file.sha256, size=validation_file.size, **_pinned_fields(pinned_validation))
        if validation and validation_file else None,
        trigger_object=uploaded.name,
        trigger_generation=uploaded.generation,
        settings=settings,
        report_uri=report_uri,
        force=is_forced(uploaded.metadata),
        example_count=report.example_count,
        estimated_billable_tokens=report.estimated_billable_tokens,
        requested_at=now.isoformat().replace("+00:00", "Z"),
    )


def _pinned_fields(pinned: StoredObject | None) -> dict[str, str]:
    return {} if pinned is None else {"pinned_object": pinned.name, "pinned_generation": pinned.generation}


def _reject(verdict: Verdict, doc: dict, deps: IntakeDeps, *, error_count: int | None = None, warning_count: int = 0) -> Outcome:
    _write_reports(deps, verdict, doc, valid=False)
    counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items()}
    if error_count is None:
        error_count = sum(counts.values())
    dataset = verdict.dataset
    event = make_event(
        EventType.DATASET_REJECTED,
        EventPayload(
            dataset_uri=dataset.uri, generation=dataset.generation, report_uri=verdict.report_uri, valid=False,
            error_count=error_count, warning_count=warning_count, counts=counts or None, model=doc.get("model") or None,
        ),
        discriminator=_discriminator(verdict),
        now=deps.now(),
    )
    deps.bus.publish_event(event)
    return Outcome("rejected", "dataset rejected", dataset.uri, {
        "generation": dataset.generation, "trigger": verdict.uploaded.uri, "report": verdict.report_uri,
        "errors": error_count, "warnings": warning_count, "counts": counts, "model": doc.get("model"),
    }, "WARNING")


def _write_reports(deps: IntakeDeps, verdict: Verdict, doc: dict, *, valid: bool) -> None:
    # The page first: once the JSON report exists (what reconciliation and the CLI look for),
    # its page exists too. Jinja2 is loaded here, not at import (cold start).
    from autotune.report_page import html_report_name, render_report_page

    page = render_report_page(doc, upload=f"{verdict.uploaded.uri}#{verdict.uploaded.generation}", report_uri=verdict.report_uri)
    deps.store.write_html_report(html_report_name(verdict.report_name), page.encode("utf-8", "backslashreplace"))
    deps.store.write_report(verdict.report_name, msgspec.json.encode(doc), valid=valid)


def _discriminator(verdict: Verdict) -> str:
    # Two manifests naming one training file are two decisions: their events must not share an id.
    if verdict.uploaded.name == verdict.dataset.name:
        return ""
    return f"{verdict.uploaded.name}#{verdict.uploaded.generation}"


def _source(deps: IntakeDeps, obj: StoredObject) -> Any:
    # A generator: nothing is read unless the validator asks (a file over the size limit is
    # rejected from its size alone).
    return deps.dataset_source(name=obj.uri, chunks=deps.store.read_chunks(obj.name, obj.generation), size=obj.size)
