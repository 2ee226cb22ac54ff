"""A models file named in deploy/config.toml goes with each Cloud Run function: staged beside
main.py, named by the function's AUTOTUNE_MODELS_FILE, and loaded from there."""

from __future__ import annotations

import msgspec

from autotune.catalog import MODELS_FILE_VAR, catalog_from_files
from autotune.catalog.catalog import CATALOG_FILE
from autotune.config import PipelineConfig, load_config_file
from autotune_gcp import deployment, staging
from autotune_gcp.deployment import make_target

OVERLAY = '[models."gemini-3.5-flash"]\nmax_validation_examples = 4_000\n'


def target(models_file: str):
    config = msgspec.structs.replace(PipelineConfig(), models_file=models_file)
    return make_target(
        project="sample-project",
        region="us-central1",
        bucket="sample-project-autotune",
        config=config,
    )


def test_the_models_file_is_staged_and_named_by_the_functions_environment(tmp_path, monkeypatch):
    overlay = tmp_path / "ours.toml"
    overlay.write_text(OVERLAY)
    staged = staging.stage("validate", tmp_path / "out", str(overlay))
    assert (staged / staging.STAGED_MODELS_FILE).read_text() == OVERLAY
    assert staging.source_digest("validate", str(overlay)) != staging.source_digest("validate")
    env = deployment.function_env(target(str(overlay)))
    assert env[MODELS_FILE_VAR] == staging.STAGED_MODELS_FILE
    assert deployment.function_env(target(""))[MODELS_FILE_VAR] == ""
    # In the function: its source directory is the working directory.
    monkeypatch.chdir(staged)
    from pathlib import Path

    catalog = catalog_from_files(CATALOG_FILE.read_text(), Path(env[MODELS_FILE_VAR]))
    model = catalog.get("gemini-3.5-flash")
    assert model is not None
    assert model.max_validation_examples == 4_000


def test_the_command_line_is_not_staged(tmp_path):
    staged = staging.stage("validate", tmp_path)
    names = {p.name for p in staged.rglob("*.py")}
    assert not {"command.py", "validate_command.py"} & names


def test_a_relative_models_file_is_relative_to_the_config_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[pipeline]\nmodels_file = "models.toml"\n')
    assert load_config_file(config).models_file == str((tmp_path / "models.toml").resolve())
