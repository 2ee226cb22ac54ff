"""One upload, start to end: the validate function's core (see autotune.intake).

The core talks to storage and Pub/Sub through the two small protocols of autotune.intake.objects;
the validate function hands it the Google-backed adapters, unit tests in-memory ones."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from autotune.config import PipelineConfig
from autotune.events import EventPayload, EventType, make_event
from autotune.intake.manifest import (
    MANIFEST_MAX_BYTES,
    InvalidManifest,
    UnusableText,
    object_name_in_bucket,
    parse_manifest,
    resolve_settings,
    unusable_metadata,
)
from autotune.intake.objects import (
    NAME_LIMIT_BYTES,
    REPORT_REQUEST_FIELD,
    SPLIT_REPORT_FIELD,
    DatasetStore,
    EventBus,
    ObjectGone,
    StoredObject,
    classify,
    name_too_long,
    name_unusable,
    pinned_object_name,
    report_object_name,
)
from autotune.intake.rejections import (
    CONTENT_ENCODED,
    INVALID_MANIFEST,
    INVALID_VALIDATION_SPLIT,
    OBJECT_NOT_FOUND,
    UNUSABLE_TEXT,
    OwnObjectsRefused,
    intake_report,
)
from autotune.intake.split import (
    SPLIT_MAX_BYTES,
    InvalidValidationSplit,
    SplitFiles,
    split_dataset,
    split_object_names,
    validation_split_fraction,
)
from autotune.jobs.request import (
    DatasetRef,
    TuningRequest,
    content_key,
    idempotency_key,
)
from autotune.settings import TuningSettings, is_forced

if TYPE_CHECKING:
    from autotune.validation import DatasetSource, MediaInspector, ValidationReport


@dataclass(frozen=True)
class UploadDecision:
    """One decision, for one structured log line."""

    decision: str  # ignored | superseded | accepted | rejected
    message: str
    dataset: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "INFO"


class DatasetValidator(Protocol):
    """autotune.validation.validate_dataset, as the intake calls it. Handed in, not imported: the
    status function's reconciliation imports this module without needing the validator until a
    lost upload turns up."""

    def __call__(
        self,
        training: DatasetSource,
        *,
        settings: TuningSettings,
        validation: DatasetSource | None = None,
        media: MediaInspector | None = None,
        dataset_bucket: str | None = None,
        allowed_media_buckets: Collection[str] = (),
        prices: Mapping[str, float] | None = None,
    ) -> ValidationReport: ...


class SourceFactory(Protocol):
    """autotune.validation.DatasetSource, as the intake builds one per file."""

    def __call__(
        self, *, name: str, chunks: Iterable[bytes], size: int | None = None
    ) -> DatasetSource: ...


@dataclass(frozen=True)
class IntakeDeps:
    store: DatasetStore
    bus: EventBus
    validate_dataset: DatasetValidator
    dataset_source: SourceFactory
    media: MediaInspector | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def process_upload(
    uploaded: StoredObject, config: PipelineConfig, deps: IntakeDeps
) -> UploadDecision:
    kind, why = classify(uploaded.name, config.incoming_prefix, config.reports_prefix)
    if kind != "ignored" and uploaded.bucket != config.bucket:
        kind, why = "ignored", f"bucket {uploaded.bucket} is not the dataset bucket {config.bucket}"
    if kind == "ignored":
        return UploadDecision(
            "ignored", f"not a dataset: {why}", uploaded.uri, {"generation": uploaded.generation}
        )
    unusable = name_unusable(uploaded.name)
    if unusable:
        return UploadDecision(
            "rejected",
            f"dataset rejected without a report or an event: {unusable}",
            ascii(uploaded.uri),
            {"generation": uploaded.generation},
            "ERROR",
        )
    report_name = report_object_name(config.reports_prefix, uploaded.name, uploaded.generation)
    too_long = name_too_long(uploaded.uri, report_name)
    if too_long:
        return UploadDecision(
            "rejected",
            f"dataset rejected without a report or an event, rename it: {too_long}",
            uploaded.uri,
            {"generation": uploaded.generation, "name_bytes": len(uploaded.name.encode())},
            "ERROR",
        )
    context = UploadContext(
        uploaded, uploaded, report_name, f"gs://{uploaded.bucket}/{report_name}"
    )
    try:
        return _decide(uploaded, kind, config, deps, context)
    except ObjectGone as exc:
        return UploadDecision(
            "superseded",
            f"object changed while being read, left to the newer upload: {exc}",
            uploaded.uri,
            {"generation": uploaded.generation},
            "WARNING",
        )


@dataclass
class UploadContext:
    """What the intake of one upload has learnt so far, filled in as it goes: the upload, the
    dataset it names, and where its report goes (what a rejection or an acceptance refers to)."""

    uploaded: StoredObject
    dataset: StoredObject  # the training file once known; the upload itself until then
    report_name: str
    report_uri: str


def _decide(
    uploaded: StoredObject,
    kind: str,
    config: PipelineConfig,
    deps: IntakeDeps,
    context: UploadContext,
) -> UploadDecision:
    manifest = None
    unusable = unusable_metadata(uploaded.metadata)
    if unusable:
        settings = TuningSettings.from_defaults(config.defaults)
        return _reject(
            context,
            intake_report(settings, UNUSABLE_TEXT, f"{uploaded.uri}: {unusable}", field="metadata"),
            deps,
        )
    if kind == "manifest":
        settings = resolve_settings(config, None, uploaded.metadata)
        try:
            if uploaded.size is not None and uploaded.size > MANIFEST_MAX_BYTES:
                raise InvalidManifest(
                    f"the manifest is {uploaded.size} bytes; at most {MANIFEST_MAX_BYTES} are read"
                )
            manifest = parse_manifest(
                deps.store.read_bytes(uploaded.name, uploaded.generation), bucket=uploaded.bucket
            )
        except UnusableText as exc:
            return _reject(
                context, intake_report(settings, UNUSABLE_TEXT, f"{uploaded.uri}: {exc}"), deps
            )
        except InvalidManifest as exc:
            return _reject(
                context, intake_report(settings, INVALID_MANIFEST, f"{uploaded.uri}: {exc}"), deps
            )
        if manifest.training.startswith(config.reports_prefix) or (
            manifest.validation or ""
        ).startswith(config.reports_prefix):
            message = f"{uploaded.uri}: names an object under {config.reports_prefix}, the pipeline's own output"
            return _reject(context, intake_report(settings, INVALID_MANIFEST, message), deps)
        found = deps.store.stat(manifest.training)
        if found is None:
            message = f"{uploaded.uri}: training file gs://{uploaded.bucket}/{manifest.training} does not exist"
            return _reject(
                context, intake_report(settings, OBJECT_NOT_FOUND, message, field="training"), deps
            )
        if len(found.uri.encode()) > NAME_LIMIT_BYTES:
            message = f"{uploaded.uri}: the training file's gs:// URI is {len(found.uri.encode())} bytes; events carry it in a Pub/Sub attribute of at most {NAME_LIMIT_BYTES}"
            return _reject(
                context, intake_report(settings, INVALID_MANIFEST, message, field="training"), deps
            )
        context.dataset = found
    training = context.dataset
    settings = resolve_settings(config, manifest, uploaded.metadata)
    validation = None
    if settings.validation_object:
        try:
            name = object_name_in_bucket(
                settings.validation_object, uploaded.bucket, what="validation"
            )
            if name.startswith(config.reports_prefix):
                raise InvalidManifest(
                    f"validation file {name} is under {config.reports_prefix}, the pipeline's own output"
                )
            validation = deps.store.stat(name)
            problem = (
                None
                if validation
                else f"validation file gs://{uploaded.bucket}/{name} does not exist"
            )
        except InvalidManifest as exc:
            problem = str(exc)
        if problem:
            return _reject(
                context,
                intake_report(
                    settings,
                    OBJECT_NOT_FOUND,
                    f"{uploaded.uri}: {problem}",
                    field="validation_object",
                ),
                deps,
            )
    try:
        fraction = validation_split_fraction(
            uploaded.metadata,
            config.validation_split,
            alone=kind == "dataset" and validation is None,
        )
        longest = max(
            len(f"gs://{training.bucket}/{name}".encode())
            for name in split_object_names(training.name, training.generation)
        )
        if fraction and longest > NAME_LIMIT_BYTES:
            raise InvalidValidationSplit(
                f"a split file's gs:// URI (the ce-subject of the events) would be {longest} bytes; at "
                f"most {NAME_LIMIT_BYTES} are allowed: shorten the upload's name, or upload a "
                "validation file and name it (autotune-validation)"
            )
        if fraction and (training.size or 0) > SPLIT_MAX_BYTES:
            raise InvalidValidationSplit(
                f"the pipeline splits files of at most {SPLIT_MAX_BYTES:,} bytes (it holds the file in "
                f"memory) and this one has {training.size:,}: split it with `autotune prepare "
                "--validation-split`, upload both and name the validation file (autotune-validation)"
            )
    except InvalidValidationSplit as exc:
        message = f"{uploaded.uri}: {exc}"
        return _reject(
            context,
            intake_report(settings, INVALID_VALIDATION_SPLIT, message, field="metadata"),
            deps,
        )
    encoded = _content_encoded(training, validation)
    if encoded:
        return _reject(
            context, intake_report(settings, CONTENT_ENCODED, f"{uploaded.uri}: {encoded}"), deps
        )
    media = OwnObjectsRefused(deps.media, config) if deps.media is not None else None

    def validated(training: StoredObject, validation: StoredObject | None) -> ValidationReport:
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
            return _reject(
                context,
                media.rewritten(report.to_dict()),
                deps,
                error_count=report.error_count,
                warning_count=report.warning_count,
            )
        if not report.valid:
            return _reject(
                context,
                report.to_dict(),
                deps,
                error_count=report.error_count,
                warning_count=report.warning_count,
            )
        if not fraction or split_summary is not None:
            break
        # Split only once the upload is valid as a whole: its errors name its own lines.
        split, parts = _split(training, fraction, str(settings.model), deps)
        split_summary = {
            "fraction": fraction,
            "validation_examples": split.plan.validation,
            "training_examples": split.plan.training,
            "drawn_before_limits": split.plan.asked,
            "limits_applied": list(split.plan.limits),
        }
        if parts is None:
            split_summary["files"] = (
                None  # nothing drawn (a small file): tuned without a validation set
            )
            break
        training, validation = parts
        context.dataset = training
        split_summary["files"] = {"training": training.uri, "validation": validation.uri}
        report = validated(training, validation)
    # Pinned before the report says valid: a copy of the very generation read, so what the job
    # reads is what the report's sha256 covers, whatever happens to the uploaded name later.
    pinned_training = deps.store.pin(
        training.name,
        training.generation,
        pinned_object_name(config.reports_prefix, report.files["train"].sha256),
    )
    pinned_validation = None
    if validation is not None:
        pinned_validation = deps.store.pin(
            validation.name,
            validation.generation,
            pinned_object_name(config.reports_prefix, report.files["validation"].sha256),
        )
    encoded = _content_encoded(pinned_training, pinned_validation)
    if encoded:  # the encoding was set on that generation after it was read (a metadata patch)
        return _reject(
            context, intake_report(settings, CONTENT_ENCODED, f"{uploaded.uri}: {encoded}"), deps
        )
    request = build_request(
        uploaded,
        training,
        validation,
        settings,
        report,
        context.report_uri,
        deps.now(),
        pinned_training=pinned_training,
        pinned_validation=pinned_validation,
    )
    accepted = {"idempotency_key": request.idempotency_key, "content_key": request.content_key}
    doc = {**report.to_dict(), REPORT_REQUEST_FIELD: accepted}
    if split_summary is not None:
        doc[SPLIT_REPORT_FIELD] = split_summary
    _write_reports(deps, context, doc, valid=True)
    # The request first: an "accepted" event must never announce a job nobody was asked to run.
    deps.bus.publish_request(request)
    event = make_event(
        EventType.DATASET_ACCEPTED,
        EventPayload(
            dataset_uri=training.uri,
            generation=training.generation,
            idempotency_key=request.idempotency_key,
            report_uri=context.report_uri,
            valid=True,
            error_count=report.error_count,
            warning_count=report.warning_count,
            counts=dict(report.counts) or None,
            model=str(settings.model),
        ),
        discriminator=_discriminator(context),
        now=deps.now(),
    )
    deps.bus.publish_event(event)
    return UploadDecision(
        "accepted",
        "dataset accepted",
        training.uri,
        {
            "generation": training.generation,
            "trigger": uploaded.uri,
            "report": context.report_uri,
            "idempotency_key": request.idempotency_key,
            "examples": report.example_count,
            "warnings": report.warning_count,
            "model": str(settings.model),
            "force": request.force,
            "pinned": pinned_training.uri,
            **({"validation_split": split_summary} if split_summary is not None else {}),
        },
    )


def _split(
    training: StoredObject, fraction: float, model: str, deps: IntakeDeps
) -> tuple[SplitFiles, tuple[StoredObject, StoredObject] | None]:
    from autotune.catalog import get_model

    spec = get_model(model)  # the report just found it valid, so the model is in the catalog
    assert spec is not None
    split = split_dataset(
        deps.store.read_bytes(training.name, training.generation),
        fraction,
        max_validation_examples=spec.max_validation_examples,
        model=spec.name,
    )
    if not split.plan.validation:
        return split, None
    training_name, validation_name = split_object_names(training.name, training.generation)
    return split, (
        deps.store.write_split_file(training_name, split.training),
        deps.store.write_split_file(validation_name, split.validation),
    )


def _content_encoded(*objects: StoredObject | None) -> str | None:
    for obj in objects:
        if obj is not None and obj.content_encoding and obj.content_encoding.lower() != "identity":
            return (
                f"{obj.uri} is stored with Content-Encoding: {obj.content_encoding[:64]}; upload it uncompressed "
                "(limits and checksums apply to the bytes as stored)"
            )
    return None


def build_request(
    uploaded: StoredObject,
    training: StoredObject,
    validation: StoredObject | None,
    settings: TuningSettings,
    report: ValidationReport,
    report_uri: str,
    now: datetime,
    *,
    pinned_training: StoredObject | None = None,
    pinned_validation: StoredObject | None = None,
) -> TuningRequest:
    train_file = report.files["train"]
    validation_file = report.files.get("validation") if validation else None
    content = content_key(
        train_file.sha256, validation_file.sha256 if validation_file else None, settings
    )
    return TuningRequest(
        idempotency_key=idempotency_key(
            training.bucket, training.name, training.generation, content
        ),
        content_key=content,
        training=DatasetRef(
            bucket=training.bucket,
            object=training.name,
            generation=training.generation,
            sha256=train_file.sha256,
            size=train_file.size,
            **_pinned_fields(pinned_training),
        ),
        validation=DatasetRef(
            bucket=validation.bucket,
            object=validation.name,
            generation=validation.generation,
            sha256=validation_file.sha256,
            size=validation_file.size,
            **_pinned_fields(pinned_validation),
        )
        if validation and validation_file
        else None,
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
    return (
        {}
        if pinned is None
        else {"pinned_object": pinned.name, "pinned_generation": pinned.generation}
    )


def _reject(
    context: UploadContext,
    doc: dict,
    deps: IntakeDeps,
    *,
    error_count: int | None = None,
    warning_count: int = 0,
) -> UploadDecision:
    _write_reports(deps, context, doc, valid=False)
    counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items()}
    if error_count is None:
        error_count = sum(counts.values())
    dataset = context.dataset
    event = make_event(
        EventType.DATASET_REJECTED,
        EventPayload(
            dataset_uri=dataset.uri,
            generation=dataset.generation,
            report_uri=context.report_uri,
            valid=False,
            error_count=error_count,
            warning_count=warning_count,
            counts=counts or None,
            model=doc.get("model") or None,
        ),
        discriminator=_discriminator(context),
        now=deps.now(),
    )
    deps.bus.publish_event(event)
    return UploadDecision(
        "rejected",
        "dataset rejected",
        dataset.uri,
        {
            "generation": dataset.generation,
            "trigger": context.uploaded.uri,
            "report": context.report_uri,
            "errors": error_count,
            "warnings": warning_count,
            "counts": counts,
            "model": doc.get("model"),
        },
        "WARNING",
    )


def _write_reports(deps: IntakeDeps, context: UploadContext, doc: dict, *, valid: bool) -> None:
    # The page first: once the JSON report exists (what reconciliation and the CLI look for),
    # its page exists too. Jinja2 is loaded here, not at import (cold start).
    from autotune.report_page import html_report_name, render_report_page

    page = render_report_page(
        doc,
        upload=f"{context.uploaded.uri}#{context.uploaded.generation}",
        report_uri=context.report_uri,
    )
    deps.store.write_html_report(
        html_report_name(context.report_name), page.encode("utf-8", "backslashreplace")
    )
    deps.store.write_report(context.report_name, msgspec.json.encode(doc), valid=valid)


def _discriminator(context: UploadContext) -> str:
    # Two manifests naming one training file are two decisions: their events must not share an id.
    if context.uploaded.name == context.dataset.name:
        return ""
    return f"{context.uploaded.name}#{context.uploaded.generation}"


def _source(deps: IntakeDeps, obj: StoredObject) -> DatasetSource:
    # A generator: nothing is read unless the validator asks (a file over the size limit is
    # rejected from its size alone).
    return deps.dataset_source(
        name=obj.uri, chunks=deps.store.read_chunks(obj.name, obj.generation), size=obj.size
    )
