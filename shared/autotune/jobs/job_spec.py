"""The Vertex AI TuningJob a tuning request becomes, and where the request waits in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotune.jobs.ports import ModelCatalog
from autotune.jobs.request import TuningRequest

# Vertex job label carrying the idempotency key (40 lowercase hex). An underscore, not a dash: the
# key also appears in list filters (labels.KEY="VALUE"), where a dash could read as an operator.
KEY_LABEL = "autotune_key"


class JobSpecError(ValueError):
    """The request cannot become a Vertex job (model or region); the message says why."""


@dataclass(frozen=True)
class JobSpec:
    parent: str  # projects/P/locations/REGION
    body: dict[str, Any]  # TuningJob in REST JSON (camelCase, enum names)


def build_job_spec(
    request: TuningRequest,
    *,
    project: str,
    catalog: ModelCatalog,
    service_account: str = "",
    dataset_bucket: str = "",
) -> JobSpec:
    settings = request.settings
    # Only validate publishes requests, always for files of the dataset bucket: one naming another
    # bucket was not validated by us, and the job would read data we never checked.
    for ref in (request.training, request.validation):
        if dataset_bucket and ref is not None and ref.bucket != dataset_bucket:
            raise JobSpecError(
                f"{ref.uri} is not in the dataset bucket {dataset_bucket}; only datasets autotune validated are tuned"
            )
    model = settings.model
    regions = catalog.regions(model)
    if regions is None:
        raise JobSpecError(f"model {model!r} is not in the catalog of tunable models")
    if settings.region not in regions:
        raise JobSpecError(
            f"model {model} cannot be tuned in region {settings.region}; it can in: {', '.join(sorted(regions))}"
        )
    if not isinstance(settings.epochs, int) or settings.epochs < 1:
        raise JobSpecError(f"epochs must be a positive integer, got {settings.epochs!r}")
    if (
        not isinstance(settings.learning_rate_multiplier, float | int)
        or settings.learning_rate_multiplier <= 0
    ):
        raise JobSpecError(
            f"learning_rate_multiplier must be positive, got {settings.learning_rate_multiplier!r}"
        )
    hyper: dict[str, Any] = {
        "epochCount": str(settings.epochs),
        "learningRateMultiplier": float(settings.learning_rate_multiplier),
    }
    size = (
        settings.adapter_size
        if settings.adapter_size is not None
        else catalog.default_adapter_size(model)
    )
    if size is not None:
        if not isinstance(size, int) or size not in catalog.adapter_sizes(model):
            allowed = ", ".join(str(s) for s in sorted(catalog.adapter_sizes(model))) or "none"
            raise JobSpecError(
                f"adapter size {size!r} is not allowed for {model}; allowed: {allowed}"
            )
        hyper["adapterSize"] = catalog.adapter_size_enum(size)
    # The pinned copies: exactly the bytes the report covers, whatever became of the uploaded names.
    spec: dict[str, Any] = {
        "trainingDatasetUri": request.training.training_uri,
        "hyperParameters": hyper,
    }
    if request.validation is not None:
        spec["validationDatasetUri"] = request.validation.training_uri
    body: dict[str, Any] = {
        "baseModel": model,
        "supervisedTuningSpec": spec,
        "tunedModelDisplayName": display_name(request),
        "description": f"autotune: {request.training.uri} generation {request.training.generation}",
        "labels": {KEY_LABEL: request.idempotency_key},
    }
    if service_account:
        body["serviceAccount"] = service_account
    return JobSpec(parent=f"projects/{project}/locations/{settings.region}", body=body)


def display_name(request: TuningRequest) -> str:
    name = request.settings.display_name or request.training.object.rsplit("/", 1)[-1].removesuffix(
        ".jsonl"
    )
    return name[:128]


def queue_order(request: TuningRequest) -> str:
    """Upload order of the object that started the work (a manifest, or the dataset itself), not of
    an older training file a manifest names: a Cloud Storage generation is the upload time in
    microseconds."""
    generation = request.trigger_generation or request.training.generation
    return f"{int(generation):020d}" if generation.isdigit() else request.requested_at
