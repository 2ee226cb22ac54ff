"""One upload, start to end: the validate function's core (see autotune.intake).

The core talks to storage and Pub/Sub through the two small protocols of autotune.intake.objects,
handed in as autotune.intake.ports.IntakeDeps: the validate function hands it the Google-backed
adapters, unit tests in-memory ones. What a decision is and how a rejection is written are in
autotune.intake.decisions, the tuning request an acceptance publishes in
autotune.intake.tuning_request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autotune.config import PipelineConfig
from autotune.events import EventPayload, EventType, make_event
from autotune.intake.decisions import (
    UploadContext,
    UploadDecision,
    discriminator,
    reject,
    write_reports,
)
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
    ObjectGone,
    StoredObject,
    classify,
    name_too_long,
    name_unusable,
    pinned_object_name,
    report_object_name,
)
from autotune.intake.ports import IntakeDeps
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
from autotune.intake.tuning_request import build_request, content_encoded
from autotune.settings import TuningSettings

if TYPE_CHECKING:
    from autotune.validation import DatasetSource, ValidationReport


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
        return reject(
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
            return reject(
                context, intake_report(settings, UNUSABLE_TEXT, f"{uploaded.uri}: {exc}"), deps
            )
        except InvalidManifest as exc:
            return reject(
                context, intake_report(settings, INVALID_MANIFEST, f"{uploaded.uri}: {exc}"), deps
            )
        if manifest.training.startswith(config.reports_prefix) or (
            manifest.validation or ""
        ).startswith(config.reports_prefix):
            message = f"{uploaded.uri}: names an object under {config.reports_prefix}, the pipeline's own output"
            return reject(context, intake_report(settings, INVALID_MANIFEST, message), deps)
        found = deps.store.stat(manifest.training)
        if found is None:
            message = f"{uploaded.uri}: training file gs://{uploaded.bucket}/{manifest.training} does not exist"
            return reject(
                context, intake_report(settings, OBJECT_NOT_FOUND, message, field="training"), deps
            )
        if len(found.uri.encode()) > NAME_LIMIT_BYTES:
            message = f"{uploaded.uri}: the training file's gs:// URI is {len(found.uri.encode())} bytes; events carry it in a Pub/Sub attribute of at most {NAME_LIMIT_BYTES}"
            return reject(
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
            return reject(
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
        return reject(
            context,
            intake_report(settings, INVALID_VALIDATION_SPLIT, message, field="metadata"),
            deps,
        )
    encoded = content_encoded(training, validation)
    if encoded:
        return reject(
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
            return reject(
                context,
                media.rewritten(report.to_dict()),
                deps,
                error_count=report.error_count,
                warning_count=report.warning_count,
            )
        if not report.valid:
            return reject(
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
    encoded = content_encoded(pinned_training, pinned_validation)
    if encoded:  # the encoding was set on that generation after it was read (a metadata patch)
        return reject(
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
    write_reports(deps, context, doc, valid=True)
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
        discriminator=discriminator(context),
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


def _source(deps: IntakeDeps, obj: StoredObject) -> DatasetSource:
    # A generator: nothing is read unless the validator asks (a file over the size limit is
    # rejected from its size alone).
    return deps.dataset_source(
        name=obj.uri, chunks=deps.store.read_chunks(obj.name, obj.generation), size=obj.size
    )
