"""What became of every upload, from a bucket listing and the ledger (pure).

The ledger only ever holds accepted datasets; a rejected upload lives on as its report
(`<reports prefix><object>/<generation>.json`, metadata `autotune-valid: false`), an ignored
one only as the object itself. Listing the incoming and reports prefixes and matching the
accepted reports to ledger records by report URI gives each upload version one fate:

- rejected: its report says so (the error count is in the report, read by the caller);
- accepted: its report says so; `record` is its ledger record, or None while submit has not
  claimed its tuning request yet;
- ignored: under the incoming prefix but not a dataset or a manifest (so never validated);
- awaiting verdict: a dataset or manifest with no report for its generation yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from autotune.config import PipelineConfig
from autotune.intake.objects import REPORT_VALID_METADATA, classify, report_object_name
from autotune.intake.reconciliation import ListedObject
from autotune.jobs.lifecycle import LedgerRecord

ACCEPTED = "accepted"
REJECTED = "rejected"
IGNORED = "ignored"
AWAITING = "awaiting verdict"
REPORT_SUFFIX = ".json"


@dataclass(frozen=True)
class UploadFate:
    bucket: str
    object_name: str  # what was uploaded: a dataset, a manifest, or an ignored file
    generation: str
    verdict: str  # ACCEPTED | REJECTED | IGNORED | AWAITING
    updated: datetime | None
    why: str = ""  # IGNORED: why it is not a dataset
    report_name: str | None = None
    record: LedgerRecord | None = None
    # From the report itself (the listing does not carry them): filled by `with_report`.
    error_count: int | None = None
    warning_count: int | None = None
    model: str | None = None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.object_name}"

    @property
    def report_uri(self) -> str | None:
        return f"gs://{self.bucket}/{self.report_name}" if self.report_name else None


def parse_report_name(report_name: str, reports_prefix: str) -> tuple[str, str] | None:
    """(uploaded object name, generation) of a report object's name, or None if it is not one."""
    if not report_name.startswith(reports_prefix) or not report_name.endswith(REPORT_SUFFIX):
        return None
    upload, _, last = report_name[len(reports_prefix) :].rpartition("/")
    generation = last[: -len(REPORT_SUFFIX)]
    if not upload or not generation.isdigit():
        return None
    return upload, generation


def upload_fates(
    uploads: Iterable[ListedObject],
    reports: Iterable[ListedObject],
    records: Iterable[LedgerRecord],
    config: PipelineConfig,
) -> list[UploadFate]:
    """Every upload version the bucket still shows (a current upload, or a report of an earlier
    generation), oldest first."""
    by_report_uri = {r.report_uri: r for r in records if r.report_uri}
    fates: dict[tuple[str, str], UploadFate] = {}
    for listed in reports:
        parsed = parse_report_name(listed.stored.name, config.reports_prefix)
        if parsed is None:
            continue
        name, generation = parsed
        valid = listed.stored.metadata.get(REPORT_VALID_METADATA)
        # A report without the metadata (written before it existed) is read by the caller.
        verdict = {"true": ACCEPTED, "false": REJECTED}.get(valid or "", "")
        report_uri = f"gs://{listed.stored.bucket}/{listed.stored.name}"
        fates[(name, generation)] = UploadFate(
            bucket=listed.stored.bucket,
            object_name=name,
            generation=generation,
            verdict=verdict,
            updated=listed.updated,
            report_name=listed.stored.name,
            record=by_report_uri.get(report_uri),
        )
    for listed in uploads:
        upload = listed.stored
        if (upload.name, upload.generation) in fates:
            continue
        kind, why = classify(upload.name, config.incoming_prefix)
        if kind == "ignored":
            fate = UploadFate(
                upload.bucket, upload.name, upload.generation, IGNORED, listed.updated, why=why
            )
        else:
            expected = report_object_name(config.reports_prefix, upload.name, upload.generation)
            fate = UploadFate(
                upload.bucket,
                upload.name,
                upload.generation,
                AWAITING,
                listed.updated,
                report_name=None,
                why=f"no report yet at gs://{upload.bucket}/{expected}",
            )
        fates[(upload.name, upload.generation)] = fate
    return sorted(
        fates.values(),
        key=lambda f: (
            f.updated is None,
            f.updated or datetime.min,
            f.object_name,
            int(f.generation),
        ),
    )


def with_report(fate: UploadFate, report: Mapping | None) -> UploadFate:
    """The fate completed from its stored report (verdict, error and warning counts, model)."""
    if not isinstance(report, Mapping):
        return fate
    errors, warnings = report_totals(report)
    verdict = fate.verdict or (ACCEPTED if report.get("valid") is True else REJECTED)
    model = report.get("model")
    return replace(
        fate,
        verdict=verdict,
        error_count=errors,
        warning_count=warnings,
        model=model if isinstance(model, str) else None,
    )


def report_totals(report: Mapping) -> tuple[int, int]:
    """(errors, warnings) over every occurrence, not only the listed ones: the report's `totals`;
    for a report without them, `counts` has them all and the listed issues tell each code's severity."""
    totals = report.get("totals")
    if isinstance(totals, Mapping) and all(
        isinstance(totals.get(k), int) for k in ("errors", "warnings")
    ):
        return totals["errors"], totals["warnings"]
    found = report.get("counts")
    counts: Mapping = found if isinstance(found, Mapping) else {}
    severity: dict[object, object] = {}
    for issue in report.get("errors") or []:
        if isinstance(issue, Mapping):
            severity.setdefault(issue.get("code"), issue.get("severity"))
    errors = warnings = 0
    for code, n in counts.items():
        n = n if isinstance(n, int) else 0
        if severity.get(code) == "warning":
            warnings += n
        else:
            errors += n
    return errors, warnings


def matches(fate: UploadFate, query: str) -> bool:
    """The same ways of naming a dataset `autotune status` takes: gs:// URI (with #generation),
    object name, file name, report URI; and the manifest's training file once it is in the ledger."""
    query = query.strip()
    names = {
        fate.uri,
        fate.object_name,
        f"{fate.uri}#{fate.generation}",
        fate.object_name.rsplit("/", 1)[-1],
    }
    if fate.report_uri:
        names.add(fate.report_uri)
    return query in names


def newest_first(fates: Iterable[UploadFate]) -> list[UploadFate]:
    return sorted(fates, key=lambda f: (f.updated or datetime.min, int(f.generation)), reverse=True)
