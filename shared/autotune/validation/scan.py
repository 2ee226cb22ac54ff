"""One file of a dataset, streamed once: every line against the model's rules (a fast path
for the lines that need no more, the full check for the rest), the file-level rules after the
last line, and the media objects the examples name (checked once per dataset, with what else
spans the files, by autotune.validation.dataset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import msgspec

from autotune.catalog import ModelSpec
from autotune.validation import gemini_rules, legacy_rules
from autotune.validation.codes import ErrorCode
from autotune.validation.line_faults import json_kind, report_undecodable
from autotune.validation.lines import LineReader
from autotune.validation.media_rules import MediaRules, split_gs_uri
from autotune.validation.report import FileRole, FileSummary, IssueLog
from autotune.validation.scan_results import FileScan, MediaRef, MediaRefs
from autotune.validation.tokens import (
    CHARS_PER_TOKEN,
    CHARS_PER_TOKEN_LOWER_BOUND,
    EXACT_BELOW,
    RISK_FRACTION,
    TOKENS_PER_TURN,
    TokenHistogram,
)

if TYPE_CHECKING:
    from autotune.validation.dataset import DatasetSource


# 16x the largest plausible example (131,072 tokens x ~4 bytes of text, doubled for JSON
# escaping): a longer line cannot be a valid example, and capping it bounds memory.
MAX_LINE_BYTES = 8 << 20
MIN_EXAMPLES = 16  # the 1.x models' documented minimum (the catalog's min_training_examples)
RECOMMENDED_EXAMPLES = 100  # the current pages: "start with 100 examples"
DUPLICATE_INDEX_LIMIT = 500_000  # examples whose hash is kept; later ones are still compared
MEDIA_CHECK_LIMIT = 200_000  # distinct gs:// objects checked for existence and size
MEDIA_EXTRA_PLACES_LIMIT = 100_000  # referencing lines kept beyond each object's first (~7 MB)
BOM = b"\xef\xbb\xbf"


class _FileFacts:
    """What the full path gathers across one file's lines for the file-level rules."""

    __slots__ = ("multimodal", "lower_bound", "dropped", "resolutions")

    def __init__(self) -> None:
        self.multimodal = 0
        self.lower_bound = 0
        self.dropped = 0
        self.resolutions: dict[str, int] = {}  # media resolution -> first line setting it


def scan_file(
    role: FileRole,
    source: DatasetSource,
    model: ModelSpec,
    media_rules: MediaRules,
    log: IssueLog,
    refs: MediaRefs,
    on_bytes: Callable[[int], None] | None,
) -> FileScan:
    """Stream `source` once, logging every line and file-level issue; the gs:// objects the
    lines name are added to `refs` for the dataset-wide media check."""
    tokens = TokenHistogram()
    small_counts = tokens.small
    token_total = 0
    reader = LineReader(source.chunks, max_line_bytes=MAX_LINE_BYTES, on_bytes=on_bytes)
    if source.size is not None and source.size > model.max_file_bytes:
        log.add(role, None, ErrorCode.FILE_TOO_LARGE, _too_large(source.name, source.size, model))
        summary = FileSummary(
            name=source.name, size=source.size, sha256=reader.sha256, lines=0, examples=0
        )
        return FileScan(summary, tokens, 0)

    legacy = model.dataset_format == "legacy"
    fast_decode = (legacy_rules.fast_decoder if legacy else gemini_rules.fast_decoder).decode
    # The decoder and the check come from the same rules module, so what the one decodes is
    # what the other takes; the type checker cannot pair the two choices.
    fast_check = cast(
        "Callable[[object], tuple[int, int] | None]",
        legacy_rules.fast_check if legacy else gemini_rules.fast_check,
    )
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
        if isinstance(batch, int):
            add_issue(role, first, ErrorCode.LINE_TOO_LONG, _line_too_long(batch))
            continue
        if first == 1 and batch[0].startswith(BOM):
            add_issue(
                role,
                1,
                ErrorCode.BYTE_ORDER_MARK,
                "the file starts with a UTF-8 byte order mark (EF BB BF), which is not JSON; save it as UTF-8 without BOM",
            )
            batch[0] = batch[0][3:]
        # The duplicate index stops growing at its limit (checked per batch, to keep the
        # per-line work to one set operation); later examples are still compared against it.
        indexing = len(seen) < DUPLICATE_INDEX_LIMIT
        if reader.batch_has_cr:
            # \r\n endings are read as \n; only batches whose bytes hold a \r pay for the test.
            for i, line in enumerate(batch):
                if line.endswith(b"\r"):
                    if not crlf:
                        first_crlf = first + i
                    crlf += 1
                    batch[i] = line[:-1]
        line_no = first - 1
        for line in batch:
            line_no += 1
            try:
                example = fast_decode(line)
            except msgspec.ValidationError:
                example = None
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                # A blank line is not JSON either: it is told apart here, off the hot path.
                if not line or line.isspace():
                    blank += 1
                    add_issue(
                        role,
                        line_no,
                        ErrorCode.BLANK_LINE,
                        "empty line; every line must hold one example",
                    )
                else:
                    report_undecodable(role, line_no, line, exc, add_issue)
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
                    report_undecodable(role, line_no, line, exc, add_issue)
                    continue
                if type(obj) is not dict:
                    add_issue(
                        role,
                        line_no,
                        ErrorCode.NOT_AN_OBJECT,
                        f"the line is a JSON {json_kind(obj)}, not an object",
                    )
                    continue
                found = "gemini" if "contents" in obj else ("legacy" if "messages" in obj else None)
                if found is not None and found not in first_of_format:
                    first_of_format[found] = line_no
                full = _full_check(
                    role, line_no, obj, model, media_rules, add_issue, refs, facts, log.cap
                )
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
                        role,
                        line_no,
                        ErrorCode.TOKEN_LIMIT_EXCEEDED,
                        f"at least {lower:,} tokens (estimate {estimate:,}); {model.name} allows {limit:,} per example",
                    )
                else:
                    add_issue(
                        role,
                        line_no,
                        ErrorCode.TOKEN_LIMIT_RISK,
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
                add_issue(
                    role,
                    line_no,
                    ErrorCode.DUPLICATE_EXAMPLE,
                    f"repeats line {original} byte for byte",
                )

    if first_fast and first_fast < first_of_format.get(model_format, first_fast + 1):
        first_of_format[model_format] = first_fast
    tokens.total += token_total
    size = reader.bytes_read
    if crlf:
        add_issue(
            role,
            None,
            ErrorCode.CRLF_LINE_ENDINGS,
            f"{crlf:,} of {reader.lines:,} lines end with \\r\\n (first: line {first_crlf}); read the same as \\n",
        )
    if source.size is None and size > model.max_file_bytes:
        add_issue(role, None, ErrorCode.FILE_TOO_LARGE, _too_large(source.name, size, model))
    if "gemini" in first_of_format and "legacy" in first_of_format:
        add_issue(
            role,
            None,
            ErrorCode.MIXED_FORMATS,
            f"line {first_of_format['gemini']} uses the Gemini `contents` format and line "
            f"{first_of_format['legacy']} the legacy `messages` format; one file, one format "
            f"({model.name} takes {'messages' if legacy else 'contents'})",
        )
    if size == 0 or reader.lines == blank:
        add_issue(
            role,
            None,
            ErrorCode.EMPTY_FILE,
            f"{source.name} has no examples" + ("" if size else " (0 bytes)"),
        )
    elif role == "train":
        _check_training_count(examples, facts.multimodal, model, add_issue)
    elif examples > model.max_validation_examples:
        add_issue(
            role,
            None,
            ErrorCode.VALIDATION_TOO_MANY_EXAMPLES,
            f"{examples:,} validation examples; {model.name} accepts at most {model.max_validation_examples:,}",
        )
    if len(facts.resolutions) > 1 and not model.mixed_media_resolution:
        settings = ", ".join(
            f"{name} (line {line})"
            for name, line in sorted(facts.resolutions.items(), key=lambda x: x[1])
        )
        add_issue(
            role,
            None,
            ErrorCode.MIXED_MEDIA_RESOLUTIONS,
            f"this file sets more than one media resolution: {settings}; {model.name} takes one per file",
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
    return FileScan(summary, tokens, duplicates, facts.lower_bound, facts.dropped)


def _full_check(
    role: FileRole,
    line_no: int,
    obj: dict,
    model: ModelSpec,
    media_rules: MediaRules,
    add_issue: Callable,
    refs: MediaRefs,
    facts: _FileFacts,
    places_cap: int,
) -> tuple[int, int, int]:
    def add(code: ErrorCode, field: str | None, message: str, **rests_on) -> None:
        add_issue(role, line_no, code, message, field, **rests_on)

    if model.dataset_format == "legacy":
        shape = legacy_rules.full_check(obj, add, model.name)
    else:
        shape = gemini_rules.full_check(obj, add, media_rules, model.name, model.function_calling)
        for resolution in shape.resolutions:
            facts.resolutions.setdefault(resolution, line_no)
    media_tokens = 0
    if shape.media:
        facts.multimodal += 1
        media_tokens, lower_bound, dropped = media_rules.check_counts(shape.media, add)
        facts.lower_bound += lower_bound
        facts.dropped += dropped
        for kind, uri, field, seconds, resolution, mime in shape.media:
            if split_gs_uri(uri) is None:
                continue
            place = (role, line_no, field, seconds, resolution)
            ref = refs.get(uri)
            if ref is not None:
                ref.count += 1
                if len(ref.places) < places_cap and refs.extra_places < MEDIA_EXTRA_PLACES_LIMIT:
                    refs.extra_places += 1
                    ref.places.append(place)
            elif len(refs) < MEDIA_CHECK_LIMIT:
                refs[uri] = MediaRef(kind, mime, place)
    return shape.chars, shape.turns, media_tokens


def _check_training_count(
    examples: int, multimodal: int, model: ModelSpec, add_issue: Callable
) -> None:
    minimum = model.min_training_examples
    if minimum is not None and examples < minimum:
        add_issue(
            "train",
            None,
            ErrorCode.TOO_FEW_EXAMPLES,
            f"{examples} training examples; {model.name} requires at least {minimum} "
            f"({RECOMMENDED_EXAMPLES} or more recommended)",
        )
    elif examples < RECOMMENDED_EXAMPLES:
        add_issue(
            "train",
            None,
            ErrorCode.FEW_EXAMPLES,
            f"{examples} training examples; starting with at least {RECOMMENDED_EXAMPLES} is recommended",
        )
    for fact in ("max_training_examples", "max_training_examples_text_only"):
        limit = getattr(model, fact)
        if limit is not None and examples > limit:
            add_issue(
                "train",
                None,
                ErrorCode.TOO_MANY_EXAMPLES,
                f"{examples:,} training examples; {model.name} accepts at most {limit:,}",
                facts=(f"model.{fact}",),
            )
            break
    limit = model.max_training_examples_multimodal
    if limit is not None and multimodal > limit:
        add_issue(
            "train",
            None,
            ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES,
            f"{multimodal:,} training examples reference media; {model.name} accepts at most {limit:,} multimodal examples",
        )


def _line_too_long(length: int) -> str:
    return (
        f"line is {length:,} bytes, over the {MAX_LINE_BYTES:,}-byte limit of one example; skipped"
    )


def _too_large(name: str, size: int, model: ModelSpec) -> str:
    return f"{name} is {size:,} bytes; {model.name} accepts at most {model.max_file_bytes:,} bytes"
