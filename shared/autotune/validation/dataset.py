"""validate_dataset: stream a training file (and an optional validation file) once, check
every line against the model's rules, and return a ValidationReport.

Memory stays bounded whatever the file size: lines are read in batches (lines.py), a
too-long line is skipped without being kept, the report keeps at most N issues per code, the
token distribution lives in a fixed histogram, and duplicate detection keeps one 64-bit
hash and the line that first held it per example for the first DUPLICATE_INDEX_LIMIT
examples (about 100 bytes each: ~20 MB per 200,000 examples, at most ~50 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import msgspec

from autotune.catalog import Catalog, ModelSpec, load_catalog
from autotune.settings import TuningSettings
from autotune.validation import gemini_rules, legacy_rules
from autotune.validation.codes import ErrorCode
from autotune.validation.lines import LineReader
from autotune.validation.media_rules import MediaRules, split_gs_uri
from autotune.validation.report import FileRole, FileSummary, IssueLog, ValidationReport
from autotune.validation.settings_rules import check_settings
from autotune.validation.tokens import (
    CHARS_PER_TOKEN,
    CHARS_PER_TOKEN_LOWER_BOUND,
    EXACT_BELOW,
    MEDIA_METHOD,
    METHOD,
    RISK_FRACTION,
    TOKENS_PER_TURN,
    TokenHistogram,
)

# 16x the largest plausible example (131,072 tokens x ~4 bytes of text, doubled for JSON
# escaping): a longer line cannot be a valid example, and capping it bounds memory.
MAX_LINE_BYTES = 8 << 20
MIN_EXAMPLES = 16  # the 1.x models' documented minimum (the catalog's min_training_examples)
RECOMMENDED_EXAMPLES = 100  # the current pages: "start with 100 examples"
DUPLICATE_INDEX_LIMIT = 500_000  # examples whose hash is kept; later ones are still compared
MEDIA_CHECK_LIMIT = 200_000  # distinct gs:// objects checked for existence and size
MEDIA_EXTRA_PLACES_LIMIT = 100_000  # referencing lines kept beyond each object's first (~7 MB)
BOM = b"\xef\xbb\xbf"


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
    refs = _MediaRefs()
    on_bytes = _cumulative(progress)

    files: dict[str, FileSummary] = {}
    scans: dict[str, _Scan] = {}
    for role, source in (("train", training), ("validation", validation)):
        if source is None:
            continue
        scan = _scan_file(role, source, rules_model, media_rules, log, refs, on_bytes)
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


class _MediaRefs(dict):
    """gs:// URI -> _MediaRef, with a bound on the places kept beyond each object's first."""

    def __init__(self) -> None:
        super().__init__()
        self.extra_places = 0


class _MediaRef:
    """One gs:// object the examples name: where it is named (the first `places_cap` places,
    so a missing object can be reported on each line that needs it) and how often."""

    __slots__ = ("kind", "places", "count")

    def __init__(self, kind: str, file: FileRole, line: int, field: str) -> None:
        self.kind, self.places, self.count = kind, [(file, line, field)], 1


class _Scan:
    def __init__(self, summary: FileSummary, tokens: TokenHistogram, duplicates: int, lower_bound: int = 0) -> None:
        self.summary = summary
        self.tokens = tokens
        self.duplicates = duplicates
        self.lower_bound = lower_bound  # examples whose token count is a lower bound (media of unknown length)


class _FileFacts:
    """What the full path gathers across one file's lines for the file-level rules."""

    __slots__ = ("multimodal", "lower_bound", "resolutions")

    def __init__(self) -> None:
        self.multimodal = 0
        self.lower_bound = 0
        self.resolutions: dict[str, int] = {}  # media resolution -> first line setting it


def _scan_file(
    role: FileRole,
    source: DatasetSource,
    model: ModelSpec,
    media_rules: MediaRules,
    log: IssueLog,
    refs: dict[str, _MediaRef],
    on_bytes: Callable[[int], None] | None,
) -> _Scan:
    tokens = TokenHistogram()
    small_counts = tokens.small
    token_total = 0
    reader = LineReader(source.chunks, max_line_bytes=MAX_LINE_BYTES, on_bytes=on_bytes)
    if source.size is not None and source.size > model.max_file_bytes:
        log.add(role, None, ErrorCode.FILE_TOO_LARGE, _too_large(source.name, source.size, model))
        summary = FileSummary(name=source.name, size=source.size, sha256=reader.sha256, lines=0, examples=0)
        return _Scan(summary, tokens, 0)

    legacy = model.dataset_format == "legacy"
    fast_decode = (legacy_rules.fast_decoder if legacy else gemini_rules.fast_decoder).decode
    fast_check = legacy_rules.fast_check if legacy else gemini_rules.fast_check
    generic_decode = msgspec.json.decode
    add_issue = log.add
    limit = model.max_tokens_per_example
    risk_at = int(limit * RISK_FRACTION)
    seen: dict[int, int] = {}
    duplicates = examples = crlf = blank = 0
    first_crlf = 0
    first_of_format: dict[str, int] = {}
    model_format = "legacy" if legacy else "gemini"

    facts = _FileFacts()
    first_fast = 0  # first line the fast path accepted (its format is the model's)
    for first, batch in reader.batches():
        if type(batch) is int:
            add_issue(role, first, ErrorCode.LINE_TOO_LONG, _line_too_long(batch))
            continue
        if first == 1 and batch[0].startswith(BOM):
            add_issue(
                role, 1, ErrorCode.BYTE_ORDER_MARK,
                "the file starts with a UTF-8 byte order mark (EF BB BF), which is not JSON; save it as UTF-8 without BOM",
            )
            batch[0] = batch[0][3:]
        # The duplicate index stops growing at its limit (checked per batch, to keep the
        # per-line work to one set operation); later examples are still compared against it.
        indexing = len(seen) < DUPLICATE_INDEX_LIMIT
        line_no = first - 1
        for line in batch:
            line_no += 1
            if line.endswith(b"\r"):
                if not crlf:
                    first_crlf = line_no
                crlf += 1
                line = line[:-1]
            if not line or line.isspace():
                blank += 1
                add_issue(role, line_no, ErrorCode.BLANK_LINE, "empty line; every line must hold one example")
                continue
            try:
                example = fast_decode(line)
            except msgspec.ValidationError:
                example = None
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                _report_undecodable(role, line_no, line, exc, add_issue)
                continue
            shape = fast_check(example) if example is not None else None
            if shape is not None:
                chars, turns = shape
                media_tokens = 0
                if not first_fast:
                    first_fast = line_no
            else:
                try:
                    obj = generic_decode(line)
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                    _report_undecodable(role, line_no, line, exc, add_issue)
                    continue
                if type(obj) is not dict:
                    add_issue(role, line_no, ErrorCode.NOT_AN_OBJECT, f"the line is a JSON {_json_kind(obj)}, not an object")
                    continue
                found = "gemini" if "contents" in obj else ("legacy" if "messages" in obj else None)
                if found is not None and found not in first_of_format:
                    first_of_format[found] = line_no
                full = _full_check(role, line_no, obj, model, media_rules, add_issue, refs, facts, log.cap)
                chars, turns, media_tokens = full
            examples += 1
            estimate = -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_TURN * turns + media_tokens
            if estimate < EXACT_BELOW:
                small_counts[estimate] += 1
                token_total += estimate
            else:
                tokens.add(estimate)
            if estimate >= risk_at:
                lower = chars // CHARS_PER_TOKEN_LOWER_BOUND + media_tokens
                if lower > limit:
                    add_issue(
                        role, line_no, ErrorCode.TOKEN_LIMIT_EXCEEDED,
                        f"at least {lower:,} tokens (estimate {estimate:,}); {model.name} allows {limit:,} per example",
                    )
                else:
                    add_issue(
                        role, line_no, ErrorCode.TOKEN_LIMIT_RISK,
                        f"about {estimate:,} tokens, near or over the {limit:,} limit of {model.name}; "
                        "the service may truncate or drop it",
                    )
            # The index maps each example's hash to the first line that held it, so a
            # duplicate can name the line it repeats.
            if indexing:
                original = seen.setdefault(hash(line), line_no)
            else:
                original = seen.get(hash(line), line_no)
            if original != line_no:
                duplicates += 1
                add_issue(role, line_no, ErrorCode.DUPLICATE_EXAMPLE, f"repeats line {original} byte for byte")

    if first_fast and first_fast < first_of_format.get(model_format, first_fast + 1):
        first_of_format[model_format] = first_fast
    tokens.total += token_total
    size = reader.bytes_read
    if crlf:
        add_issue(
            role, None, ErrorCode.CRLF_LINE_ENDINGS,
            f"{crlf:,} of {reader.lines:,} lines end with \\r\\n (first: line {first_crlf}); read the same as \\n",
        )
    if source.size is None and size > model.max_file_bytes:
        add_issue(role, None, ErrorCode.FILE_TOO_LARGE, _too_large(source.name, size, model))
    if "gemini" in first_of_format and "legacy" in first_of_format:
        add_issue(
            role, None, ErrorCode.MIXED_FORMATS,
            f"line {first_of_format['gemini']} uses the Gemini `contents` format and line "
            f"{first_of_format['legacy']} the legacy `messages` format; one file, one format "
            f"({model.name} takes {'messages' if legacy else 'contents'})",
        )
    if size == 0 or reader.lines == blank:
        add_issue(role, None, ErrorCode.EMPTY_FILE, f"{source.name} has no examples" + ("" if size else " (0 bytes)"))
    elif role == "train":
        _check_training_count(examples, facts.multimodal, model, add_issue)
    elif examples > model.max_validation_examples:
        add_issue(
            role, None, ErrorCode.VALIDATION_TOO_MANY_EXAMPLES,
            f"{examples:,} validation examples; {model.name} accepts at most {model.max_validation_examples:,}",
        )
    if len(facts.resolutions) > 1 and not model.mixed_media_resolution:
        seen = ", ".join(f"{name} (line {line})" for name, line in sorted(facts.resolutions.items(), key=lambda x: x[1]))
        add_issue(
            role, None, ErrorCode.MIXED_MEDIA_RESOLUTIONS,
            f"this file sets more than one media resolution: {seen}; {model.name} takes one per file",
        )
    formats = sorted(first_of_format)
    summary = FileSummary(
        name=source.name,
        size=size,
        sha256=reader.sha256,
        lines=reader.lines,
        examples=examples,
        format=formats[0] if len(formats) == 1 else ("mixed" if formats else None),
    )
    return _Scan(summary, tokens, duplicates, facts.lower_bound)


def _full_check(
    role: FileRole,
    line_no: int,
    obj: dict,
    model: ModelSpec,
    media_rules: MediaRules,
    add_issue: Callable,
    refs: _MediaRefs,
    facts: _FileFacts,
    places_cap: int,
) -> tuple[int, int, int]:
    def add(code: ErrorCode, field: str | None, message: str) -> None:
        add_issue(role, line_no, code, message, field)

    if model.dataset_format == "legacy":
        shape = legacy_rules.full_check(obj, add, model.name)
    else:
        shape = gemini_rules.full_check(obj, add, media_rules, model.name, model.function_calling)
        for resolution in shape.resolutions:
            facts.resolutions.setdefault(resolution, line_no)
    media_tokens = 0
    if shape.media:
        facts.multimodal += 1
        media_tokens, lower_bound = media_rules.check_counts(shape.media, add)
        facts.lower_bound += lower_bound
        for kind, uri, field, _, _ in shape.media:
            if split_gs_uri(uri) is None:
                continue
            ref = refs.get(uri)
            if ref is not None:
                ref.count += 1
                if len(ref.places) < places_cap and refs.extra_places < MEDIA_EXTRA_PLACES_LIMIT:
                    refs.extra_places += 1
                    ref.places.append((role, line_no, field))
            elif len(refs) < MEDIA_CHECK_LIMIT:
                refs[uri] = _MediaRef(kind, role, line_no, field)
    return shape.chars, shape.turns, media_tokens


def _check_training_count(examples: int, multimodal: int, model: ModelSpec, add_issue: Callable) -> None:
    minimum = model.min_training_examples
    if minimum is not None and examples < minimum:
        add_issue(
            "train", None, ErrorCode.TOO_FEW_EXAMPLES,
            f"{examples} training examples; {model.name} requires at least {minimum} "
            f"({RECOMMENDED_EXAMPLES} or more recommended)",
        )
    elif examples < RECOMMENDED_EXAMPLES:
        add_issue(
            "train", None, ErrorCode.FEW_EXAMPLES,
            f"{examples} training examples; starting with at least {RECOMMENDED_EXAMPLES} is recommended",
        )
    for limit in (model.max_training_examples, model.max_training_examples_text_only):
        if limit is not None and examples > limit:
            add_issue(
                "train", None, ErrorCode.TOO_MANY_EXAMPLES,
                f"{examples:,} training examples; {model.name} accepts at most {limit:,}",
            )
            break
    limit = model.max_training_examples_multimodal
    if limit is not None and multimodal > limit:
        add_issue(
            "train", None, ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES,
            f"{multimodal:,} training examples reference media; {model.name} accepts at most {limit:,} multimodal examples",
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
    refs: dict[str, _MediaRef], media: MediaInspector | None, media_rules: MediaRules, log: IssueLog
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


def _report_undecodable(role: FileRole, line_no: int, line: bytes, exc: BaseException, add_issue: Callable) -> None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        add_issue(
            role, line_no, ErrorCode.INVALID_UTF8,
            f"byte {bad.start + 1} (0x{line[bad.start]:02x}) is not valid UTF-8; save the file as UTF-8",
        )
        return
    if isinstance(exc, RecursionError):
        add_issue(role, line_no, ErrorCode.INVALID_JSON, "not valid JSON: nested too deeply to read")
    elif "truncated" in str(exc) and not line.rstrip().endswith((b"}", b"]")):
        add_issue(role, line_no, ErrorCode.INVALID_JSON, "not valid JSON: the line ends before the JSON value is complete")
    elif "truncated" in str(exc):
        # msgspec says "truncated" for an unpaired high surrogate escape (\ud800) too.
        add_issue(role, line_no, ErrorCode.INVALID_JSON, "not valid JSON: an incomplete value or an unpaired \\uD8xx escape")
    else:
        add_issue(role, line_no, ErrorCode.INVALID_JSON, f"not valid JSON: {exc}")


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _line_too_long(length: int) -> str:
    return f"line is {length:,} bytes, over the {MAX_LINE_BYTES:,}-byte limit of one example; skipped"


def _too_large(name: str, size: int, model: ModelSpec) -> str:
    return f"{name} is {size:,} bytes; {model.name} accepts at most {model.max_file_bytes:,} bytes"


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


def _file_stats(scan: _Scan) -> dict:
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
