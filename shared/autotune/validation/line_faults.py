"""How a line that is not a JSON object is reported: bytes that are not UTF-8, JSON that cannot
be read (cut short, nested too deeply, an unpaired surrogate escape), or a JSON value of another
kind. Kept apart from the scanning loop in autotune.validation.scan, which calls these only off
its hot path, when a line fails to decode."""

from __future__ import annotations

from collections.abc import Callable

from autotune.validation.codes import ErrorCode
from autotune.validation.report import FileRole


def report_undecodable(
    role: FileRole, line_no: int, line: bytes, exc: BaseException, add_issue: Callable
) -> None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        add_issue(
            role,
            line_no,
            ErrorCode.INVALID_UTF8,
            f"byte {bad.start + 1} (0x{line[bad.start]:02x}) is not valid UTF-8; save the file as UTF-8",
        )
        return
    if isinstance(exc, RecursionError):
        add_issue(
            role, line_no, ErrorCode.INVALID_JSON, "not valid JSON: nested too deeply to read"
        )
    elif "truncated" in str(exc) and not line.rstrip().endswith((b"}", b"]")):
        add_issue(
            role,
            line_no,
            ErrorCode.INVALID_JSON,
            "not valid JSON: the line ends before the JSON value is complete",
        )
    elif "truncated" in str(exc):
        # msgspec says "truncated" for an unpaired high surrogate escape (\ud800) too.
        add_issue(
            role,
            line_no,
            ErrorCode.INVALID_JSON,
            "not valid JSON: an incomplete value or an unpaired \\uD8xx escape",
        )
    else:
        add_issue(role, line_no, ErrorCode.INVALID_JSON, f"not valid JSON: {exc}")


def json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"
