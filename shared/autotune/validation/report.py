"""The validation report: plain values, one JSON document (the shape of issue 2).

{"valid", "model", "files": {"train": {...}, "validation": {...}}, "errors": [...],
 "counts": {code: n}, "totals": {"errors": n, "warnings": n}, "stats": {...}, "cost_estimate": {...}}

"errors" lists warnings too (each has a severity); at most `max_listed_per_code` entries
per code are listed, while "counts" and "totals" count every occurrence. Each listed issue's
"file" is the path of the file it is in and its "role" says which file that is ("train" or
"validation"); reports stored before "role" existed carry the role in "file".
"""

from __future__ import annotations

from typing import Literal

import msgspec

from autotune.validation.codes import CODE_FACTS, ErrorCode
from autotune.validation.verdicts import Verdicts

FileRole = Literal["train", "validation"]


class Issue(msgspec.Struct, frozen=True, kw_only=True):
    file: FileRole | None  # None: about the settings, not a file
    line: int | None  # 1-based; None: about the whole file or the settings
    code: str
    severity: str
    field: str | None
    message: str


class FileSummary(msgspec.Struct, kw_only=True):
    name: str
    size: int  # bytes read (or the known size when the file was too large to read)
    sha256: str  # hex digest of every byte read
    lines: int
    examples: int  # lines holding a JSON object
    format: str | None = None  # "gemini" / "legacy" / "mixed", as found in the file


class IssueLog:
    """Counts every issue; keeps the first `max_listed_per_code` of each code. With verdicts, a
    code that rests on a catalog fact gets the severity verdicts.py gives it (a warning when the
    fact is unconfirmed), so one code may hold errors and warnings; totals count each issue."""

    def __init__(self, max_listed_per_code: int, verdicts: Verdicts | None = None) -> None:
        self.cap = max_listed_per_code
        self.listed: list[Issue] = []
        self.counts: dict[str, int] = {}
        self._verdicts = verdicts
        self._errors = self._warnings = 0

    def add(
        self,
        file: FileRole | None,
        line: int | None,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        *,
        kind: str | None = None,
        facts: tuple[str, ...] | None = None,
    ) -> None:
        """kind and facts: what the finding rests on, for codes.CODE_FACTS (see Verdicts.judge)."""
        severity = code.severity
        if self._verdicts is not None and code in CODE_FACTS:
            severity, note = self._verdicts.judge(code, kind, facts)
            message += note
        if severity == "error":
            self._errors += 1
        else:
            self._warnings += 1
        n = self.counts.get(code.value, 0) + 1
        self.counts[code.value] = n
        if n <= self.cap:
            self.listed.append(
                Issue(
                    file=file,
                    line=line,
                    code=code.value,
                    severity=severity,
                    field=field,
                    message=message,
                )
            )

    def totals(self) -> tuple[int, int]:
        return self._errors, self._warnings


class ValidationReport(msgspec.Struct, kw_only=True):
    valid: bool
    model: str
    files: dict[str, FileSummary]
    errors: list[Issue]
    counts: dict[str, int]
    stats: dict
    cost_estimate: dict
    error_count: int
    warning_count: int
    example_count: int  # training examples
    estimated_billable_tokens: int  # training tokens x epochs; 0 when unknown

    def to_dict(self) -> dict:
        return {
            "valid": self.valid,
            "model": self.model,
            "files": {k: msgspec.to_builtins(v) for k, v in self.files.items()},
            "errors": [self._issue_dict(i) for i in self.errors],
            "counts": dict(self.counts),
            "totals": {"errors": self.error_count, "warnings": self.warning_count},
            "stats": self.stats,
            "cost_estimate": self.cost_estimate,
        }

    def _issue_dict(self, issue: Issue) -> dict:
        """An issue for scripts: "file" is the file's path (what a person can open), "role" is
        which of the two files it is ("train" / "validation"); both None for the settings."""
        doc = msgspec.to_builtins(issue)
        summary = self.files.get(issue.file) if issue.file else None
        doc["file"] = summary.name if summary is not None else issue.file
        doc["role"] = issue.file
        return doc

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.to_dict())

    def summary_line(self) -> str:
        """One line for logs and event payloads."""
        verdict = "valid" if self.valid else "INVALID"
        return (
            f"{verdict}: {self.example_count} training examples for {self.model}, "
            f"{self.error_count} errors, {self.warning_count} warnings"
        )
