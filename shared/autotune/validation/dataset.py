"""validate_dataset: stream a training file (and an optional validation file) once, check
every line against the model's rules, and return a ValidationReport.

Memory stays bounded whatever the file size: lines are read in batches (lines.py), a
too-long line is skipped without being kept, the report keeps at most N issues per code, the
token distribution lives in a fixed histogram, and duplicate detection keeps one 64-bit
hash and the line that first held it per example for the first DUPLICATE_INDEX_LIMIT
examples (about 100 bytes each: ~20 MB per 200,000 examples, at most ~50 MB). Each file is
read by autotune.validation.scan; what spans the files (the validation fraction, the media
objects, the totals and the cost) is here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import msgspec

from autotune.catalog import Catalog, ModelSpec, load_catalog
from autotune.settings import TuningSettings
from autotune.validation.codes import ErrorCode
from autotune.validation.media_rules import MediaRules
from autotune.validation.report import FileSummary, IssueLog, ValidationReport
from autotune.validation.scan import (
    DUPLICATE_INDEX_LIMIT,
    FileScan,
    MediaRef,
    MediaRefs,
    scan_file,
)
from autotune.validation.settings_rules import check_settings
from autotune.validation.tokens import MEDIA_METHOD, METHOD


@dataclass(frozen=True)
class DatasetSource:
    name: str  # shown in messages: a path or a gs:// URI
    chunks: Iterable[bytes]  # the file, streamed in pieces of any size
    size: int | None = None  # known size: file_too_large is reported without reading


class MediaInspector(Protocol):
    def stat(self, uris: Collection[str]) -> Mapping[str, int | None]:
        """gs:// URI -> size in bytes, or None when the object does not exist. Called once per
        report with every distinct gs:// URI; implementations check them concurrently."""
        ...


def validate_dataset(
    training: DatasetSource,
    *,
    settings: TuningSettings,
    validation: DatasetSource | None = None,
    media: MediaInspector | None = None,
    dataset_bucket: str | None = None,
    allowed_media_buckets: Collection[str] = (),
    max_listed_per_code: int = 100,
    progress: Callable[[int], None] | None = None,
) -> ValidationReport:
    """Check a dataset for the model and settings a job will use. Never raises for bad data
    or bad settings (they are in the report); an exception from reading `chunks` (or from
    `media.stat`) propagates, so a caller can retry a transient failure.

    dataset_bucket + allowed_media_buckets: the buckets fileData may point into; when both are
    empty (a local file) no allow-list applies. progress: called after each chunk with the
    bytes read so far, training and validation files together."""
    catalog = load_catalog()
    return validate_for_model(
        training,
        settings=settings,
        model=catalog.get(settings.model),
        catalog=catalog,
        validation=validation,
        media=media,
        dataset_bucket=dataset_bucket,
        allowed_media_buckets=allowed_media_buckets,
        max_listed_per_code=max_listed_per_code,
        progress=progress,
    )


def validate_for_model(
    training: DatasetSource,
    *,
    settings: TuningSettings,
    model: ModelSpec | None,
    catalog: Catalog,
    validation: DatasetSource | None = None,
    media: MediaInspector | None = None,
    dataset_bucket: str | None = None,
    allowed_media_buckets: Collection[str] = (),
    max_listed_per_code: int = 100,
    progress: Callable[[int], None] | None = None,
) -> ValidationReport:
    """validate_dataset with the model given directly (tests use it for limits no catalog
    model has, such as a maximum number of training examples)."""
    log = IssueLog(max_listed_per_code)
    check_settings(settings, model, list(catalog.models), lambda code, field, msg: log.add(None, None, code, msg, field))
    rules_model = model if model is not None else _stand_in_model(catalog, settings.model)
    allowed = set(allowed_media_buckets) | ({dataset_bucket} if dataset_bucket else set())
    media_rules = MediaRules(catalog, rules_model, allowed)
    refs = MediaRefs()
    on_bytes = _cumulative(progress)

    files: dict[str, FileSummary] = {}
    scans: dict[str, FileScan] = {}
    for role, source in (("train", training), ("validation", validation)):
        if source is None:
            continue
        scan = scan_file(role, source, rules_model, media_rules, log, refs, on_bytes)
        files[role] = scan.summary
        scans[role] = scan

    if "validation" in scans and "train" in scans:
        _check_validation_fraction(scans["train"].summary.examples, scans["validation"].summary.examples, rules_model, log)
    media_checked = _check_media(refs, media, media_rules, log)
    errors, warnings = log.totals()
    train = scans["train"]
    epochs = settings.epochs if isinstance(settings.epochs, int) and not isinstance(settings.epochs, bool) else 0
    billable = train.tokens.total * max(epochs, 0)
    stats = {
        "method": METHOD,
        **{role: _file_stats(scan) for role, scan in scans.items()},
        "media_tokens": {
            "method": MEDIA_METHOD,
            "lower_bound_examples": sum(scan.lower_bound for scan in scans.values()),
        },
        "media": {
            "references": sum(r.count for r in refs.values()),
            "distinct_objects": len(refs),
            "checked": media_checked,
        },
        "duplicates": {"indexed_examples_limit": DUPLICATE_INDEX_LIMIT},
    }
    return ValidationReport(
        valid=errors == 0,
        model=settings.model,
        files=files,
        errors=log.listed,
        counts=log.counts,
        stats=stats,
        cost_estimate=_cost_estimate(model, settings.model, epochs, train.tokens.total, billable),
        error_count=errors,
        warning_count=warnings,
        example_count=train.summary.examples,
        estimated_billable_tokens=billable,
    )


def _check_validation_fraction(training: int, validation: int, model: ModelSpec, log: IssueLog) -> None:
    fraction = model.validation_fraction
    if fraction is None or validation <= model.validation_fraction_over or validation > model.max_validation_examples:
        return  # (over the maximum is validation_too_many_examples already)
    if validation > training * fraction:
        log.add(
            "validation", None, ErrorCode.VALIDATION_OVER_TRAINING_FRACTION,
            f"{validation:,} validation examples next to {training:,} training examples; with more than "
            f"{model.validation_fraction_over:,} validation examples {model.name} accepts at most "
            f"{fraction:.0%} of the training examples ({int(training * fraction):,})",
        )


def _check_media(
    refs: dict[str, MediaRef], media: MediaInspector | None, media_rules: MediaRules, log: IssueLog
) -> bool:
    if media is None or not refs:
        return False
    sizes = media.stat(list(refs))
    for uri, ref in refs.items():
        if uri not in sizes:
            continue
        size = sizes[uri]
        if size is None:
            code, problem = ErrorCode.FILE_NOT_FOUND, f"{uri} does not exist"
        elif size > media_rules.max_bytes(ref.kind):
            limit = media_rules.max_bytes(ref.kind)
            code = ErrorCode.MEDIA_TOO_LARGE
            problem = f"{uri} is {size / 1e6:,.1f} MB; a {ref.kind} may be at most {limit / 1e6:,.0f} MB"
        else:
            continue
        # One issue per referencing line (up to the per-code cap), each saying how many
        # lines name the object, so every line to fix is listed.
        times = f" (referenced on {ref.count:,} lines)" if ref.count > 1 else ""
        for file, line, field in ref.places:
            log.add(file, line, code, problem + times, field)
    return True


def _stand_in_model(catalog: Catalog, name: str) -> ModelSpec:
    """For a model the catalog lacks: check the lines with the most permissive current rules,
    so the report still names line problems next to unsupported_model."""
    gemini = [m for m in catalog.models.values() if m.dataset_format == "gemini"]
    widest = max(gemini, key=lambda m: (m.max_tokens_per_example, len(m.modalities)))
    return msgspec.structs.replace(widest, name=name)


def _cumulative(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    if progress is None:
        return None
    total = 0

    def on_bytes(n: int) -> None:
        nonlocal total
        total += n
        progress(total)

    return on_bytes


def _file_stats(scan: FileScan) -> dict:
    return {"tokens": scan.tokens.summary(), "duplicates": scan.duplicates}


def _cost_estimate(model: ModelSpec | None, name: str, epochs: int, tokens: int, billable: int) -> dict:
    price = model.price_per_million_training_tokens if model is not None else None
    cost = None if price is None else round(billable / 1e6 * price, 2)
    if model is None:
        note = "unknown model: no price"
    elif price is None:
        note = f"price per 1M training tokens for {name} unknown; see cloud.google.com/vertex-ai/generative-ai/pricing"
    else:
        note = model.price_note or f"USD {price:g} per 1M training tokens, read on {model.price_read_on}"
    return {
        "model": name,
        "epochs": epochs,
        "training_tokens": tokens,
        "billable_tokens": billable,
        "price_per_million_training_tokens": price,
        "currency": "USD",
        "price_read_on": model.price_read_on if model is not None else None,
        "estimated_cost": cost,
        "note": note,
    }
