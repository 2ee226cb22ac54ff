"""What the intake of one upload decides, and how a rejection is recorded: the decision (one
structured log line), what the intake has learnt of the upload so far, and the report and event
written for it. Apart from autotune.intake.upload, which holds the steps that reach a decision;
the acceptance there writes its report through the same write_reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from autotune.events import EventPayload, EventType, make_event
from autotune.intake.objects import StoredObject

if TYPE_CHECKING:
    from autotune.intake.ports import IntakeDeps


@dataclass(frozen=True)
class UploadDecision:
    """One decision, for one structured log line."""

    decision: str  # ignored | superseded | accepted | rejected
    message: str
    dataset: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    severity: str = "INFO"


@dataclass
class UploadContext:
    """What the intake of one upload has learnt so far, filled in as it goes: the upload, the
    dataset it names, and where its report goes (what a rejection or an acceptance refers to)."""

    uploaded: StoredObject
    dataset: StoredObject  # the training file once known; the upload itself until then
    report_name: str
    report_uri: str


def reject(
    context: UploadContext,
    doc: dict,
    deps: IntakeDeps,
    *,
    error_count: int | None = None,
    warning_count: int = 0,
) -> UploadDecision:
    write_reports(deps, context, doc, valid=False)
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
        discriminator=discriminator(context),
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


def write_reports(deps: IntakeDeps, context: UploadContext, doc: dict, *, valid: bool) -> None:
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


def discriminator(context: UploadContext) -> str:
    # Two manifests naming one training file are two decisions: their events must not share an id.
    if context.uploaded.name == context.dataset.name:
        return ""
    return f"{context.uploaded.name}#{context.uploaded.generation}"
