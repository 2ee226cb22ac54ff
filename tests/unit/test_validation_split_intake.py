"""The validation split of a training file uploaded alone (autotune-validation-split metadata or the
deployment's validation_split default): the decision, the split files, their validation and
pinning, the request, and a second delivery of the same upload. Storage and Pub/Sub are in-memory
doubles; the validator and the split are the real ones."""

from __future__ import annotations

import json

import pytest
from intake_doubles import BUCKET, NOW, MemoryBus, MemoryStore

from autotune.catalog import get_model
from autotune.config import PipelineConfig, TuningDefaults
from autotune.intake.objects import classify
from autotune.intake.ports import IntakeDeps
from autotune.intake.rejections import INVALID_VALIDATION_SPLIT
from autotune.intake.split import (
    VALIDATION_SPLIT_METADATA,
    InvalidValidationSplit,
    split_dataset,
    split_object_names,
    validation_split_fraction,
)
from autotune.intake.upload import process_upload
from autotune.validation import DatasetSource, validate_dataset

CONFIG = PipelineConfig(
    project="p", bucket=BUCKET, defaults=TuningDefaults(model="gemini-3.5-flash", epochs=3)
)
SPLIT = {VALIDATION_SPLIT_METADATA: "0.1"}


def jsonl(n: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": f"Question {i}?"}]},
                    {"role": "model", "parts": [{"text": f"Answer {i}."}]},
                ]
            }
        ).encode()
        + b"\n"
        for i in range(n)
    )


def run(store: MemoryStore, bus: MemoryBus, uploaded, config: PipelineConfig = CONFIG):
    deps = IntakeDeps(
        store=store,
        bus=bus,
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        now=lambda: NOW,
    )
    return process_upload(uploaded, config, deps)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def bus(store: MemoryStore) -> MemoryBus:
    return MemoryBus(store.effects)


# --- the decision (pure) --------------------------------------------------------------------------


def test_metadata_wins_over_the_default_and_zero_turns_the_split_off() -> None:
    assert validation_split_fraction({VALIDATION_SPLIT_METADATA: " 0.2 "}, 0.0, alone=True) == 0.2
    assert validation_split_fraction({VALIDATION_SPLIT_METADATA: "0"}, 0.1, alone=True) == 0.0
    assert validation_split_fraction({}, 0.1, alone=True) == 0.1


def test_the_default_is_off_and_never_applies_to_an_upload_that_names_its_validation_file() -> None:
    assert PipelineConfig().validation_split == 0.0
    assert validation_split_fraction({}, 0.0, alone=True) == 0.0
    assert validation_split_fraction({}, 0.1, alone=False) == 0.0


@pytest.mark.parametrize("text", ["1", "1.5", "-0.1", "ten percent", "nan", "inf", ""])
def test_a_split_that_is_not_a_fraction_is_refused(text: str) -> None:
    with pytest.raises(InvalidValidationSplit, match=VALIDATION_SPLIT_METADATA):
        validation_split_fraction({VALIDATION_SPLIT_METADATA: text}, 0.0, alone=True)


def test_a_split_asked_beside_a_validation_file_is_refused() -> None:
    with pytest.raises(InvalidValidationSplit, match="already names its validation file"):
        validation_split_fraction(SPLIT, 0.0, alone=False)


def test_split_files_sit_beside_the_upload_in_a_folder_the_intake_ignores() -> None:
    training, validation = split_object_names("incoming/team/support.jsonl", "123")
    assert (training, validation) == (
        "incoming/team/parts/support/123/training.jsonl",
        "incoming/team/parts/support/123/validation.jsonl",
    )
    assert classify(training, "incoming/", "reports/")[0] == "ignored"
    assert classify(validation, "incoming/", "reports/")[0] == "ignored"


def test_the_split_is_deterministic_and_independent_of_line_endings_and_order() -> None:
    data = jsonl(200)
    first = split_dataset(data, 0.1, max_validation_examples=256, model="m")
    shuffled = b"".join(reversed(data.splitlines(keepends=True))).replace(b"\n", b"\r\n")
    again = split_dataset(shuffled, 0.1, max_validation_examples=256, model="m")
    assert first == split_dataset(data, 0.1, max_validation_examples=256, model="m")
    assert sorted(first.validation.splitlines()) == sorted(again.validation.splitlines())
    assert 0 < first.plan.validation < 200
    assert sorted(first.training.splitlines() + first.validation.splitlines()) == sorted(
        data.splitlines()
    )


def test_the_split_stays_within_the_models_validation_limit() -> None:
    spec = get_model("gemini-3.5-flash")
    assert spec is not None
    split = split_dataset(
        jsonl(2000), 0.5, max_validation_examples=spec.max_validation_examples, model=spec.name
    )
    assert split.plan.validation <= spec.max_validation_examples
    assert len(split.validation.splitlines()) == split.plan.validation
    assert split.plan.limits


# --- one upload, through the intake -----------------------------------------------------------------


def test_a_training_file_alone_is_split_validated_pinned_and_both_handed_to_the_job(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/support.jsonl", jsonl(200), SPLIT)
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "accepted", outcome
    training_name, validation_name = split_object_names(
        "incoming/support.jsonl", uploaded.generation
    )
    (request,) = bus.requests
    assert request.validation is not None
    assert (request.training.object, request.validation.object) == (training_name, validation_name)
    report = json.loads(store.reports[f"reports/incoming/support.jsonl/{uploaded.generation}.json"])
    assert report["valid"] is True
    assert report["validation_split"]["files"] == {
        "training": f"gs://{BUCKET}/{training_name}",
        "validation": f"gs://{BUCKET}/{validation_name}",
    }
    assert (
        report["validation_split"]["validation_examples"]
        + report["validation_split"]["training_examples"]
        == 200
    )
    for ref, name in ((request.training, training_name), (request.validation, validation_name)):
        pinned = ref.pinned_object
        assert pinned == f"reports/pinned/{ref.sha256}.jsonl"
        assert store.objects[pinned][1] == store.objects[name][1]
    assert request.trigger_object == "incoming/support.jsonl"
    assert request.example_count == report["validation_split"]["training_examples"]


def test_the_same_upload_delivered_twice_gives_the_same_split_files_and_one_request_key(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/support.jsonl", jsonl(200), SPLIT)
    run(store, bus, uploaded)
    files = {
        name: store.objects[name] for name in split_object_names(uploaded.name, uploaded.generation)
    }
    run(store, bus, uploaded)

    assert {
        name: store.objects[name] for name in files
    } == files  # not written again: same generations
    first, second = bus.requests
    assert (
        first.idempotency_key == second.idempotency_key and first.content_key == second.content_key
    )
    assert sum(effect.startswith("split ") for effect in store.effects) == 2


def test_the_config_default_splits_an_upload_without_metadata(
    store: MemoryStore, bus: MemoryBus
) -> None:
    config = PipelineConfig(
        project="p", bucket=BUCKET, validation_split=0.1, defaults=CONFIG.defaults
    )
    run(store, bus, store.put("incoming/support.jsonl", jsonl(200)), config)
    (request,) = bus.requests
    assert request.validation is not None


def test_without_the_metadata_or_a_default_nothing_is_split(
    store: MemoryStore, bus: MemoryBus
) -> None:
    run(store, bus, store.put("incoming/support.jsonl", jsonl(200)))
    (request,) = bus.requests
    assert request.validation is None
    assert not any(effect.startswith("split ") for effect in store.effects)


def test_an_invalid_upload_is_rejected_on_its_own_lines_and_not_split(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/bad.jsonl", jsonl(100) + b"{not json\n", SPLIT)
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "rejected"
    report = json.loads(store.reports[f"reports/incoming/bad.jsonl/{uploaded.generation}.json"])
    assert [(issue["file"], issue["role"], issue["line"]) for issue in report["errors"]] == [
        ("gs://data-bucket/incoming/bad.jsonl", "train", 101)  # the upload's own line 101
    ]
    assert not any(effect.startswith("split ") for effect in store.effects)
    assert bus.requests == []


def test_a_bad_split_value_is_a_rejection_naming_the_key(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/support.jsonl", jsonl(200), {VALIDATION_SPLIT_METADATA: "1.5"})
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "rejected"
    report = json.loads(store.reports[f"reports/incoming/support.jsonl/{uploaded.generation}.json"])
    (issue,) = report["errors"]
    assert (
        issue["code"] == INVALID_VALIDATION_SPLIT and VALIDATION_SPLIT_METADATA in issue["message"]
    )
    assert bus.requests == []


def test_a_split_beside_a_named_validation_file_is_a_rejection(
    store: MemoryStore, bus: MemoryBus
) -> None:
    store.put("incoming/parts/validation.jsonl", jsonl(20))
    metadata = {**SPLIT, "autotune-validation": "incoming/parts/validation.jsonl"}
    outcome = run(store, bus, store.put("incoming/support.jsonl", jsonl(200), metadata))
    assert outcome.decision == "rejected"
    assert json.loads(next(iter(store.reports.values())))["counts"] == {INVALID_VALIDATION_SPLIT: 1}


def test_a_file_too_small_to_split_is_tuned_without_validation_and_says_so(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/small.jsonl", jsonl(16), SPLIT)
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "accepted"
    (request,) = bus.requests
    assert request.validation is None
    assert outcome.fields["validation_split"]["files"] is None
    assert outcome.fields["validation_split"]["limits_applied"]


def test_a_default_out_of_range_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidValidationSplit, match="AUTOTUNE_VALIDATION_SPLIT"):
        validation_split_fraction({}, 1.5, alone=True)


def test_an_upload_whose_split_file_names_would_be_too_long_is_rejected_before_reading(
    store: MemoryStore, bus: MemoryBus
) -> None:
    name = (
        "incoming/" + "n" * 980 + ".jsonl"
    )  # fits the limit itself; its split files' names would not
    uploaded = store.put(name, jsonl(200), SPLIT)
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "rejected"
    (issue,) = json.loads(next(iter(store.reports.values())))["errors"]
    assert issue["code"] == INVALID_VALIDATION_SPLIT and "would be" in issue["message"]
    assert store.chunks_read == 0 and bus.requests == []


def test_an_upload_too_large_to_split_in_memory_is_rejected_before_reading(
    store: MemoryStore, bus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autotune.intake.upload as intake  # where the limit is read

    data = jsonl(200)
    monkeypatch.setattr(intake, "SPLIT_MAX_BYTES", len(data) - 1)
    outcome = run(store, bus, store.put("incoming/big.jsonl", data, SPLIT))

    assert outcome.decision == "rejected"
    (issue,) = json.loads(next(iter(store.reports.values())))["errors"]
    assert issue["code"] == INVALID_VALIDATION_SPLIT and "autotune prepare" in issue["message"]
    assert store.chunks_read == 0 and bus.requests == []
    monkeypatch.setattr(intake, "SPLIT_MAX_BYTES", len(data))
    assert run(store, bus, store.put("incoming/fits.jsonl", data, SPLIT)).decision == "accepted"
