"""The settings one tuning job will use: what the validator checks and the submitter sends.

Settings come from three layers, later ones winning: the deployment defaults
(`config.TuningDefaults`), a `NAME.tuning.json` manifest, and the object's custom metadata
(`autotune-model`, ...). Values arrive as text from metadata, so parsing keeps the raw text of
anything it cannot read; the validator then reports it with the matching settings code
(`invalid_epochs`, ...) instead of the function crashing on it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from autotune.config import TuningDefaults

# Object metadata keys, one per setting (metadata key -> TuningSettings field).
METADATA_KEYS: dict[str, str] = {
    "autotune-model": "model",
    "autotune-epochs": "epochs",
    "autotune-adapter-size": "adapter_size",
    "autotune-learning-rate-multiplier": "learning_rate_multiplier",
    "autotune-region": "region",
    "autotune-validation": "validation_object",
    "autotune-display-name": "display_name",
}
FORCE_METADATA_KEY = "autotune-force"


class TuningSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One job's settings. A numeric field holds a str when its input was not a number."""

    model: str
    epochs: int | str
    adapter_size: int | str | None = None  # None: the model's default adapter size
    learning_rate_multiplier: float | str = 1.0
    region: str = "us-central1"
    validation_object: str | None = None  # object name of the validation file, same bucket
    display_name: str | None = None

    @classmethod
    def from_defaults(cls, defaults: TuningDefaults) -> TuningSettings:
        return cls(
            model=defaults.model,
            epochs=defaults.epochs,
            adapter_size=defaults.adapter_size or None,
            learning_rate_multiplier=defaults.learning_rate_multiplier,
            region=defaults.region,
        )

    def overridden_by(self, values: Mapping[str, object]) -> TuningSettings:
        """These settings with `values` (field name -> raw value) laid over them."""
        changes: dict[str, object] = {}
        for field, raw in values.items():
            if field not in self.__struct_fields__ or raw is None:
                continue
            changes[field] = _coerce(field, raw)
        return msgspec.structs.replace(self, **changes)

    def overridden_by_metadata(self, metadata: Mapping[str, str] | None) -> TuningSettings:
        picked = {METADATA_KEYS[k]: v for k, v in (metadata or {}).items() if k in METADATA_KEYS}
        return self.overridden_by(picked)

    def fingerprint_fields(self) -> dict[str, object]:
        """What makes two jobs on the same data different (part of the idempotency key)."""
        return {
            "model": self.model,
            "epochs": self.epochs,
            "adapter_size": self.adapter_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
            "region": self.region,
            "validation_object": self.validation_object,
        }


def _coerce(field: str, raw: object) -> object:
    if field in {"epochs", "adapter_size"}:
        return _as_int(raw)
    if field == "learning_rate_multiplier":
        return _as_float(raw)
    return str(raw)


def _as_int(raw: object) -> int | str:
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        return text


def _as_float(raw: object) -> float | str:
    if isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        return text


def is_forced(metadata: Mapping[str, str] | None) -> bool:
    return str((metadata or {}).get(FORCE_METADATA_KEY, "")).strip().lower() in {"1", "true", "yes"}
