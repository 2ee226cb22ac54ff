"""Deployment configuration: deploy/config.toml, turned into AUTOTUNE_* environment variables.

A function reads only its environment (Cloud Run sets it from the same file at deploy time),
so `PipelineConfig.from_env` is the one way the running code learns its settings. Local tools
(the stack, the CLI, the deploy planner) start from the file with `load_config_file`, or hand
`from_env` the file the environment overrides; they know where the checkout keeps it
(autotune_local.checkout), this module does not.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import msgspec


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


class TuningDefaults(msgspec.Struct, frozen=True, kw_only=True):
    model: str = "gemini-3.5-flash"
    epochs: int = 3
    adapter_size: int = 0  # 0: the model's own default, from the catalog
    learning_rate_multiplier: float = 1.0
    region: str = "us-central1"


class PipelineConfig(msgspec.Struct, frozen=True, kw_only=True):
    project: str = "autotune-local"
    bucket: str = ""
    incoming_prefix: str = "incoming/"
    reports_prefix: str = "reports/"
    events_topic: str = "tuning-events"
    requests_topic: str = "tuning-requests"
    ticks_topic: str = "status-ticks"
    ledger_collection: str = "autotune-datasets"
    max_concurrent_jobs: int = 1
    allowed_media_buckets: tuple[str, ...] = ()
    # Set only on the local stack: the tuning emulator's http:// address. Empty means the real
    # regional Vertex AI endpoint for the job's region.
    vertex_endpoint: str = ""
    tuning_service_account: str = ""
    # Reconciliation (autotune.intake.reconciliation): how often the status tick looks for uploads whose
    # messages were lost (0: never), and how old an upload must be before it counts as lost.
    reconcile_every_seconds: int = 600
    reconcile_after_seconds: int = 900
    # A models file merged over the shipped catalog (autotune.catalog): a team's own models and
    # corrected limits. Relative paths are relative to deploy/config.toml's directory; empty: none.
    models_file: str = ""
    # The fraction of a training file uploaded alone drawn into a validation file when its
    # metadata does not say (autotune-validation-split); 0: no split.
    validation_split: float = 0.0
    # [prices]: model -> USD per 1M training tokens, over the catalog's (autotune.catalog.prices).
    prices: dict[str, float] = {}
    defaults: TuningDefaults = TuningDefaults()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, config_file: Path | None = None
    ) -> PipelineConfig:
        """The environment's AUTOTUNE_* variables over `config_file` (a function has none: its
        environment holds every setting) or, without one, over the defaults."""
        env = os.environ if environ is None else environ
        base = load_config_file(config_file) if config_file is not None else cls()
        return _apply_env(base, env)

    def to_env(self) -> dict[str, str]:
        """The AUTOTUNE_* variables that reproduce this configuration in a function."""
        out: dict[str, str] = {}
        for field, var in _PIPELINE_VARS.items():
            out[var] = _format(getattr(self, field))
        for field, var in _DEFAULT_VARS.items():
            out[var] = _format(getattr(self.defaults, field))
        return out

    def export_models_file(self) -> None:
        """Make this configuration's models file the one autotune.catalog loads in this process
        (the CLI; a function gets AUTOTUNE_MODELS_FILE from its environment)."""
        from autotune.catalog import MODELS_FILE_VAR

        if self.models_file:
            os.environ[MODELS_FILE_VAR] = self.models_file
        else:
            os.environ.pop(MODELS_FILE_VAR, None)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"


_PIPELINE_VARS = {
    "project": "AUTOTUNE_PROJECT",
    "bucket": "AUTOTUNE_BUCKET",
    "incoming_prefix": "AUTOTUNE_INCOMING_PREFIX",
    "reports_prefix": "AUTOTUNE_REPORTS_PREFIX",
    "events_topic": "AUTOTUNE_EVENTS_TOPIC",
    "requests_topic": "AUTOTUNE_REQUESTS_TOPIC",
    "ticks_topic": "AUTOTUNE_TICKS_TOPIC",
    "ledger_collection": "AUTOTUNE_LEDGER_COLLECTION",
    "max_concurrent_jobs": "AUTOTUNE_MAX_CONCURRENT_JOBS",
    "allowed_media_buckets": "AUTOTUNE_ALLOWED_MEDIA_BUCKETS",
    "vertex_endpoint": "AUTOTUNE_VERTEX_ENDPOINT",
    "tuning_service_account": "AUTOTUNE_TUNING_SERVICE_ACCOUNT",
    "reconcile_every_seconds": "AUTOTUNE_RECONCILE_EVERY_SECONDS",
    "reconcile_after_seconds": "AUTOTUNE_RECONCILE_AFTER_SECONDS",
    "models_file": "AUTOTUNE_MODELS_FILE",
    "validation_split": "AUTOTUNE_VALIDATION_SPLIT",
    "prices": "AUTOTUNE_PRICES",
}
_DEFAULT_VARS = {
    "model": "AUTOTUNE_DEFAULT_MODEL",
    "epochs": "AUTOTUNE_DEFAULT_EPOCHS",
    "adapter_size": "AUTOTUNE_DEFAULT_ADAPTER_SIZE",
    "learning_rate_multiplier": "AUTOTUNE_DEFAULT_LEARNING_RATE_MULTIPLIER",
    "region": "AUTOTUNE_DEFAULT_REGION",
}


def load_config_file(path: Path) -> PipelineConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    pipeline = dict(raw.get("pipeline", {}))
    if "allowed_media_buckets" in pipeline:
        pipeline["allowed_media_buckets"] = tuple(pipeline["allowed_media_buckets"])
    models_file = pipeline.get("models_file")
    if isinstance(models_file, str) and models_file and not Path(models_file).is_absolute():
        pipeline["models_file"] = str((path.parent / models_file).resolve())
    from autotune.catalog.prices import PriceError, parse_prices

    if "prices" in pipeline:
        raise ConfigError(
            f"{path}: pipeline.prices: prices go in a [prices] table of their own (model = USD per 1M training tokens)"
        )
    try:
        defaults = msgspec.convert(raw.get("tuning_defaults", {}), TuningDefaults)
        prices = parse_prices(raw.get("prices", {}))
        return msgspec.convert({**pipeline, "defaults": defaults, "prices": prices}, PipelineConfig)
    except (msgspec.ValidationError, PriceError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _apply_env(base: PipelineConfig, env: Mapping[str, str]) -> PipelineConfig:
    pipeline = {
        f: _parse(var, env[var], getattr(base, f))
        for f, var in _PIPELINE_VARS.items()
        if var in env
    }
    defaults = {
        f: _parse(var, env[var], getattr(base.defaults, f))
        for f, var in _DEFAULT_VARS.items()
        if var in env
    }
    return msgspec.structs.replace(
        base, **pipeline, defaults=msgspec.structs.replace(base.defaults, **defaults)
    )


def _parse(var: str, text: str, like: object) -> object:
    if isinstance(like, dict):  # AUTOTUNE_PRICES
        from autotune.catalog.prices import PriceError, parse_prices_env

        try:
            return parse_prices_env(text)
        except PriceError as exc:
            raise ConfigError(f"{var}={text!r}: {exc}") from exc
    try:
        if isinstance(like, bool):
            return text.strip().lower() in {"1", "true", "yes"}
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
        if isinstance(like, tuple):
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return text
    except ValueError as exc:
        raise ConfigError(f"{var}={text!r}: expected {type(like).__name__}") from exc


def _format(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        from autotune.catalog.prices import format_prices

        return format_prices(value)
    return str(value)
