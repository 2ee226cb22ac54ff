"""What submit checks before it acts on a tuning request: that autotune validated exactly this.

Publishing on tuning-requests (or calling submit) is all it takes to reach submit, so a request
is acted on only when the pipeline's own records agree with it:
- the report of the upload it names (reports/<trigger object>/<trigger generation>.json) says
  valid and names this very request (its idempotency and content keys, written by validate);
- both keys are what the request's own fields hash to (no forged key can stand for another
  dataset's);
- the pinned copies it names are the ones validate made (named by the validated sha256) and are
  still the generation validate recorded (nobody wrote over them since);
- its settings are within the catalog's limits and the validator's guards (epochs, learning-rate
  multiplier, adapter size, region), and its texts are bounded.
Pure: the caller reads the report and the pinned copies' generations and hands them in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from autotune.intake.manifest import DISPLAY_NAME_LIMIT_CHARS, text_problem
from autotune.intake.objects import (
    REPORT_REQUEST_FIELD,
    pinned_object_name,
    report_object_name,
)
from autotune.jobs.request import (
    DatasetRef,
    TuningRequest,
    content_key,
    idempotency_key,
)


def object_name_problem(name: str) -> str | None:
    """Cloud Storage names may hold control characters (a tab is a fine name), not lone
    surrogates, and at most 1,024 UTF-8 bytes."""
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return "is not encodable as UTF-8"
    return f"is {size} bytes; at most 1024 are allowed" if size > 1024 else None


def expected_report_name(request: TuningRequest, reports_prefix: str) -> str:
    trigger = request.trigger_object or request.training.object
    generation = request.trigger_generation or request.training.generation
    return report_object_name(reports_prefix, trigger, generation)


def pinned_names(request: TuningRequest) -> list[str]:
    return [
        ref.pinned_object
        for ref in (request.training, request.validation)
        if ref is not None and ref.pinned_object
    ]


def request_refusal(
    request: TuningRequest,
    *,
    bucket: str,
    reports_prefix: str,
    report: bytes | None,
    current_generations: Mapping[str, str | None],
    settings_errors: Callable[[TuningRequest], list[str]],
) -> str | None:
    """Why submit must not act on `request`, or None. `report`: the stored report object at
    expected_report_name (None: there is none); `current_generations`: pinned object name ->
    its generation now (None: gone)."""
    for what, name in (
        ("the training object name", request.training.object),
        ("the validation object name", request.validation.object if request.validation else ""),
        ("the trigger object name", request.trigger_object),
    ):
        problem = object_name_problem(name)
        if problem:
            return f"{what} {problem}"
    for what, text, limit in (
        ("the model", request.settings.model, 128),
        ("the region", request.settings.region, 64),
        ("the display name", request.settings.display_name or "", DISPLAY_NAME_LIMIT_CHARS),
        ("the validation object setting", request.settings.validation_object or "", 1024),
    ):
        problem = text_problem(text, limit=limit)
        if problem:
            return f"{what} {problem}"
    for ref in (request.training, request.validation):
        if ref is None:
            continue
        if ref.bucket != bucket:
            return f"{ascii(ref.uri[:1100])} is not in the dataset bucket {bucket}; only datasets autotune validated are tuned"
        if not (
            ref.generation.isascii() and ref.generation.isdigit() and len(ref.generation) <= 20
        ):
            return f"{ref.uri}: generation {ascii(ref.generation[:40])} is not a Cloud Storage generation"
        if len(ref.sha256) != 64 or any(c not in "0123456789abcdef" for c in ref.sha256):
            return f"{ref.uri}: sha256 {ascii(ref.sha256[:80])} is not a sha256 digest"
    content = content_key(
        request.training.sha256,
        request.validation.sha256 if request.validation else None,
        request.settings,
    )
    if content != request.content_key:
        return "its content key is not the hash of its files and settings: not a request validate published"
    expected_key = idempotency_key(
        request.training.bucket, request.training.object, request.training.generation, content
    )
    if expected_key != request.idempotency_key:
        return "its idempotency key is not the hash of its dataset version and content: not a request validate published"
    report_name = expected_report_name(request, reports_prefix)
    if request.report_uri != f"gs://{bucket}/{report_name}":
        return (
            f"its report_uri is not the report of the upload it names (gs://{bucket}/{report_name})"
        )
    if report is None:
        return f"no report gs://{bucket}/{report_name}: autotune never validated this upload"
    try:
        doc = json.loads(report)
    except ValueError:
        return f"the report gs://{bucket}/{report_name} is not JSON"
    if not isinstance(doc, dict) or doc.get("valid") is not True:
        return (
            f"the report gs://{bucket}/{report_name} does not say valid: the dataset was rejected"
        )
    accepted = doc.get(REPORT_REQUEST_FIELD)
    if (
        not isinstance(accepted, dict)
        or accepted.get("idempotency_key") != request.idempotency_key
        or accepted.get("content_key") != request.content_key
    ):
        return f"the report gs://{bucket}/{report_name} accepted another request (other files or settings)"
    problem = pinned_problem(request, reports_prefix, current_generations)
    if problem:
        return problem
    errors = settings_errors(request)
    if errors:
        return "settings out of limits: " + "; ".join(errors)
    return None


def pinned_problem(
    request: TuningRequest, reports_prefix: str, current_generations: Mapping[str, str | None]
) -> str | None:
    """Whether the pinned copies are still those validate made (checked again right before a job
    is created from the queue)."""
    for ref in (request.training, request.validation):
        problem = (
            _pinned_problem(ref, reports_prefix, current_generations) if ref is not None else None
        )
        if problem:
            return problem
    return None


def _pinned_problem(
    ref: DatasetRef, reports_prefix: str, current_generations: Mapping[str, str | None]
) -> str | None:
    if not ref.pinned_object or not ref.pinned_generation:
        return f"{ref.uri} has no pinned copy: the job would read whatever the object holds by then"
    if ref.pinned_object != pinned_object_name(reports_prefix, ref.sha256):
        return f"{ref.uri}: the pinned copy {ref.pinned_object} is not the one named by its validated sha256"
    now = current_generations.get(ref.pinned_object)
    if now is None:
        return (
            f"the pinned copy gs://{ref.bucket}/{ref.pinned_object} of {ref.uri} no longer exists"
        )
    if now != ref.pinned_generation:
        return (
            f"the pinned copy gs://{ref.bucket}/{ref.pinned_object} of {ref.uri} was written over "
            f"(generation {now}, validated {ref.pinned_generation}): its bytes are not the ones validated"
        )
    return None


def catalog_settings_errors(request: TuningRequest) -> list[str]:
    """The validator's own settings checks (catalog limits and guards), errors only: a setting
    refused only by an unconfirmed catalog fact is a warning there, and not refused here."""
    from autotune import catalog
    from autotune.validation.settings_rules import check_settings
    from autotune.validation.verdicts import Verdicts

    errors: list[str] = []
    model = catalog.get_model(request.settings.model)
    verdicts = Verdicts(catalog.load_catalog(), model)

    def add(code, field, message) -> None:
        if verdicts.severity(code) == "error":
            errors.append(f"{field}: {message}")

    check_settings(request.settings, model, catalog.model_names(), add)
    return errors
