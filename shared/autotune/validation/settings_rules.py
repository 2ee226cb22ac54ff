"""Check a job's settings against the catalog. Problems are report entries, never exceptions."""

from __future__ import annotations

import math
from collections.abc import Callable

from autotune.catalog import ModelSpec
from autotune.settings import TuningSettings
from autotune.validation.codes import ErrorCode

# Our guards, not Vertex AI's documented bounds: they catch typos (epochs=300) before a job
# bills hours of tokens.
MAX_EPOCHS = 100
MAX_LEARNING_RATE_MULTIPLIER = 10.0

AddSetting = Callable[[ErrorCode, str, str], None]  # code, field, message


def check_settings(
    settings: TuningSettings, model: ModelSpec | None, known_models: list[str], add: AddSetting
) -> None:
    if model is None:
        add(
            ErrorCode.UNSUPPORTED_MODEL,
            "model",
            f"model {settings.model!r} is not in the catalog; choose one of: {', '.join(known_models)}",
        )
    elif model.lifecycle == "retired":
        when = f" on {model.lifecycle_date}" if model.lifecycle_date else ""
        if when and "lifecycle_date" in model.unconfirmed:
            when += " (the date is unconfirmed; the retirement is not)"
        add(
            ErrorCode.MODEL_RETIRED,
            "model",
            f"{model.name} was retired{when}; Vertex AI refuses tuning jobs for it (`autotune models` lists the current ones)",
        )

    epochs = settings.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        add(
            ErrorCode.INVALID_EPOCHS,
            "epochs",
            f"epochs is {epochs!r}; expected a whole number from 1 to {MAX_EPOCHS}",
        )

    lrm = settings.learning_rate_multiplier
    if (
        isinstance(lrm, bool)
        or not isinstance(lrm, int | float)
        or not math.isfinite(lrm)
        or not 0 < lrm <= MAX_LEARNING_RATE_MULTIPLIER
    ):
        add(
            ErrorCode.INVALID_LEARNING_RATE_MULTIPLIER,
            "learning_rate_multiplier",
            f"learning_rate_multiplier is {lrm!r}; expected a number greater than 0 and at most {MAX_LEARNING_RATE_MULTIPLIER:g}",
        )

    if model is None:
        return
    size = settings.adapter_size
    if size is not None:
        if not model.adapter_sizes:
            add(
                ErrorCode.INVALID_ADAPTER_SIZE,
                "adapter_size",
                f"{model.name} takes no adapter size; leave it unset",
            )
        elif isinstance(size, bool) or not isinstance(size, int) or size not in model.adapter_sizes:
            allowed = ", ".join(str(s) for s in model.adapter_sizes)
            add(
                ErrorCode.INVALID_ADAPTER_SIZE,
                "adapter_size",
                f"adapter size {size!r} is not one {model.name} accepts ({allowed})",
            )
    if settings.region not in model.regions:
        add(
            ErrorCode.UNSUPPORTED_REGION,
            "region",
            f"{model.name} cannot be tuned in {settings.region!r}; regions: {', '.join(model.regions)}",
        )
