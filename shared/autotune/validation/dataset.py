"""validate_dataset: stream a training file (and an optional validation file) once, check
every line against the model's rules, and return a ValidationReport.

Memory stays bounded whatever the file size: lines are read in batches (lines.py), a
too-long line is skipped without being kept, the report keeps at most N issues per code, the
token distribution lives in a fixed histogram, and duplicate detection keeps one 64-bit
hash and the line that first held it per example for the first DUPLICATE_INDEX_LIMIT
examples (about 100 bytes each: ~20 MB per 200,000 examples, at most ~50 MB). Each file is
read by autotune.validation.scan; what spans the files (the validation fraction, the media
objects, the dropped examples, the totals and the cost) is here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple, Protocol

import msgspec

from autotune.catalog import Catalog, ModelSpec, load_catalog
from autotune.catalog.prices import TrainingPrice, how_to_set, training_price
from autotune.settings import TuningSettings
from autotune.validation.codes import ErrorCode
from autotune.validation.media_rules import MediaRules
from autotune.validation.report import FileRole, FileSummary, IssueLog, ValidationReport
from autotune.validation.scan import DUPLICATE_INDEX_LIMIT, scan_file
from autotune.validation.scan_results import FileScan, MediaRef, MediaRefs
from autotune.validation.settings_rules import check_settings
from autotune.validation.tokens import MEDIA_METHOD, METHOD
from autotune.validation.verdicts import Verdicts


class DatasetSource(NamedTuple):
    name: str  # shown in messages: a path or a gs:// URI
    chunks: Iterable[bytes]  # the file, streamed in pieces of any size
    size: int | None = None  # known size: file_too_large is reported without reading


class MediaInspector(Protocol):
    def stat(self, uris: Collection[str]) -> Mapping[str, int | None]:
        """gs:// URI -> size in bytes, or None when the object does not exist. Called once per
        report with every distinct gs:// URI; implementations check them concurrently."""
        ...


class VideoDurations(Protocol):
    """Optionally also offered by a MediaInspector: the playing time of video objects, read
    from their container headers (video_header.video_duration over ranged reads)."""

    def durations(
        self, videos: Mapping[str, tuple[str, int]]
    ) -> Mapping[str, float | None | Exception]:
        """gs:// URI -> (mime type, size) in; URI -> seconds, None when the container does not
        record its length, or the VideoHeaderError saying why the header could not be read."""
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
    prices: Mapping[str, float] | None = None,
) -> ValidationReport:
    """Check a dataset for the model and settings a job will use. Never raises for bad data
    or bad settings (they are in the report); an exception from reading `chunks` (or from
    `media.stat`) propagates, so a caller can retry a transient failure.

    dataset_bucket + allowed_media_buckets: the buckets fileData may point into; when both are
    empty (a local file) no allow-list applies. progress: called after each chunk with the
    bytes read so far, training and validation files together. prices: deploy/config.toml's
    [prices] (model -> USD per 1M training tokens), over the catalog's for the cost estimate."""
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
        prices=prices,
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
    prices: Mapping[str, float] | None = None,
) -> ValidationReport:
    """validate_dataset with the model given directly (tests use it for limits no catalog
    model has, such as a maximum number of training examples)."""
    rules_model = model if model is not None else _stand_in_model(catalog, settings.model)
    log = IssueLog(max_listed_per_code, Verdicts(catalog, rules_model))
    check_settings(
        settings,
        model,
        list(catalog.models),
        lambda code, field, msg: log.add(None, None, code, msg, field),
    )
    allowed = set(allowed_media_buckets) | ({dataset_bucket} if dataset_bucket else set())
    media_rules = MediaRules(catalog, rules_model, allowed)
    refs = MediaRefs()
    on_bytes = _cumulative(progress)

    files: dict[str, FileSummary] = {}
    scans: dict[FileRole, FileScan] = {}
    roles: tuple[tuple[FileRole, DatasetSource | None], ...] = (
        ("train", training),
        ("validation", validation),
    )
    for role, source in roles:
        if source is None:
            continue
        scan = scan_file(role, source, rules_model, media_rules, log, refs, on_bytes)
        files[role] = scan.summary
        scans[role] = scan

    if "validation" in scans and "train" in scans:
        _check_validation_fraction(
            scans["train"].summary.examples, scans["validation"].summary.examples, rules_model, log
        )
    media_checked, durations_read = _check_media(refs, media, media_rules, log, scans)
    for role, scan in scans.items():
        _check_dropped(role, scan, media_rules, log)
    errors, warnings = log.totals()
    train = scans["train"]
    epochs = (
        settings.epochs
        if isinstance(settings.epochs, int) and not isinstance(settings.epochs, bool)
        else 0
    )
    billable = train.tokens.total * max(epochs, 0)
    stats: dict[str, object] = {
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
            "video_durations_read": durations_read,
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
        cost_estimate=_cost_estimate(
            training_price(settings.model, model, catalog, prices or {}),
            model,
            settings.model,
            epochs,
            train.tokens.total,
            billable,
        ),
        error_count=errors,
        warning_count=warnings,
        example_count=train.summary.examples,
        estimated_billable_tokens=billable,
    )


def _check_validation_fraction(
    training: int, validation: int, model: ModelSpec, log: IssueLog
) -> None:
    fraction = model.validation_fraction
    if (
        fraction is None
        or validation <= model.validation_fraction_over
        or validation > model.max_validation_examples
    ):
        return  # (over the maximum is validation_too_many_examples already)
    if validation > training * fraction:
        log.add(
            "validation",
            None,
            ErrorCode.VALIDATION_OVER_TRAINING_FRACTION,
            f"{validation:,} validation examples next to {training:,} training examples; with more than "
            f"{model.validation_fraction_over:,} validation examples {model.name} accepts at most "
            f"{fraction:.0%} of the training examples ({int(training * fraction):,})",
        )


def _check_media(
    refs: dict[str, MediaRef],
    media: MediaInspector | None,
    media_rules: MediaRules,
    log: IssueLog,
    scans: Mapping[FileRole, FileScan],
) -> tuple[bool, int]:
    """Existence and size of every gs:// object; with an inspector that reads durations, the
    length of each video whose length no referencing line gives. Returns (checked, number of
    video lengths read)."""
    if media is None or not refs:
        return False, 0
    from autotune.validation.video_header import (  # only with --check-files
        VideoHeaderError,
        is_readable_type,
    )

    sizes = media.stat(list(refs))
    videos: dict[str, tuple[str, int]] = {}
    for uri, ref in refs.items():
        if uri not in sizes:
            continue
        size = sizes[uri]
        if size is None:
            code, problem = ErrorCode.FILE_NOT_FOUND, f"{uri} does not exist"
            kind = None
        elif size > media_rules.max_bytes(ref.kind):
            limit = media_rules.max_bytes(ref.kind)
            code = ErrorCode.MEDIA_TOO_LARGE
            problem = (
                f"{uri} is {size / 1e6:,.1f} MB; a {ref.kind} may be at most {limit / 1e6:,.0f} MB"
            )
            kind = ref.kind
        else:
            if (
                ref.kind == "video"
                and is_readable_type(ref.mime)
                and any(p[3] is None for p in ref.places)
            ):
                videos[uri] = (ref.mime, size)
            continue
        # One issue per referencing line (up to the per-code cap), each saying how many
        # lines name the object, so every line to fix is listed.
        times = f" (referenced on {ref.count:,} lines)" if ref.count > 1 else ""
        for file, line, field, *_ in ref.places:
            log.add(file, line, code, problem + times, field, kind=kind)
    read_durations = getattr(media, "durations", None)
    if not videos or read_durations is None:
        return True, 0
    found = read_durations(videos)
    read = 0
    for uri, seconds in found.items():
        unreadable = isinstance(seconds, VideoHeaderError)
        read += seconds is not None and not unreadable
        for file, line, field, known, resolution in refs[uri].places:
            if known is not None:
                continue  # the line's videoMetadata gives the clip's own length
            if unreadable:
                problem = f"{uri}: cannot read the video's length: {seconds}"
                log.add(file, line, ErrorCode.VIDEO_DURATION_UNREADABLE, problem, field)
            elif seconds is not None:
                add = _adder(log, file, line)
                scans[file].dropped += media_rules.too_long(
                    "video", seconds, resolution, field, f"({uri})", add
                )
    return True, read


def _adder(log: IssueLog, file: FileRole, line: int) -> Callable[..., None]:
    return lambda code, field, message, **rests_on: log.add(
        file, line, code, message, field, **rests_on
    )


def _check_dropped(role: FileRole, scan: FileScan, media_rules: MediaRules, log: IssueLog) -> None:
    fraction = media_rules.max_dropped_fraction("video")
    examples = scan.summary.examples
    if fraction is None or not scan.dropped or scan.dropped <= examples * fraction:
        return
    log.add(
        role,
        None,
        ErrorCode.TOO_MANY_DROPPED_EXAMPLES,
        f"{scan.dropped:,} of {examples:,} examples hold a video over its maximum length (media_too_long); Vertex AI "
        f"drops them, and with more than {fraction:.0%} of the dataset dropped it fails the job before training",
        kind="video",
    )


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


def _cost_estimate(
    price: TrainingPrice | None,
    model: ModelSpec | None,
    name: str,
    epochs: int,
    tokens: int,
    billable: int,
) -> dict:
    """Billable tokens x the price, saying where the price came from (or how to set one)."""
    cost = None if price is None else round(billable / 1e6 * price.usd_per_million, 2)
    if price is not None and price.source == "config":
        note = f"USD {price.usd_per_million:g} per 1M training tokens, set in deploy/config.toml [prices] (AUTOTUNE_PRICES)"
    elif price is not None:
        note = f"USD {price.usd_per_million:g} per 1M training tokens from the catalog"
        note += (
            f" ({price.url}, read on {price.read_on})"
            if price.url
            else f" (read on {price.read_on})"
        )
        note += f"; {price.note}" if price.note else ""
    elif model is None:
        note = f"unknown model: no price; {how_to_set(name)}"
    else:
        note = how_to_set(name)
    return {
        "model": name,
        "epochs": epochs,
        "training_tokens": tokens,
        "billable_tokens": billable,
        "price_per_million_training_tokens": None if price is None else price.usd_per_million,
        "currency": "USD",
        "price_source": None if price is None else price.source,
        "price_url": None if price is None else price.url,
        "price_read_on": None if price is None else price.read_on,
        "estimated_cost": cost,
        "note": note,
    }
