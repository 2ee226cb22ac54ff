"""The contracts every function shares: configuration, settings layering, events, tuning requests."""

import json
from pathlib import Path
from typing import Any

import pytest

from autotune.config import ConfigError, PipelineConfig, TuningDefaults, load_config_file
from autotune.events import (
    EventPayload,
    EventType,
    from_pubsub_message,
    make_event,
    to_pubsub_message,
)
from autotune.jobs.request import (
    DatasetRef,
    InvalidTuningRequest,
    TuningRequest,
    content_key,
    decode_request,
    encode_request,
    idempotency_key,
)
from autotune.settings import TuningSettings, is_forced


def test_config_file_round_trips_through_environment():
    config = load_config_file(Path(__file__).resolve().parents[2] / "deploy" / "config.toml")
    assert config.events_topic == "tuning-events"
    assert config.defaults.epochs > 0
    again = PipelineConfig.from_env(config.to_env())
    assert again == config


def test_environment_overrides_the_file():
    config = PipelineConfig.from_env(
        {"AUTOTUNE_MAX_CONCURRENT_JOBS": "4", "AUTOTUNE_ALLOWED_MEDIA_BUCKETS": "a, b,"}
    )
    assert config.max_concurrent_jobs == 4
    assert config.allowed_media_buckets == ("a", "b")


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="AUTOTUNE_MAX_CONCURRENT_JOBS"):
        PipelineConfig.from_env({"AUTOTUNE_MAX_CONCURRENT_JOBS": "many"})


def test_bad_config_file_names_the_file(tmp_path):
    bad = tmp_path / "config.toml"
    bad.write_text("[pipeline]\nmax_concurrent_jobs = 'x'\n")
    with pytest.raises(ConfigError, match="config.toml"):
        load_config_file(bad)


def test_metadata_overrides_defaults_and_keeps_unreadable_text_for_the_validator():
    base = TuningSettings.from_defaults(TuningDefaults(model="gemini-2.5-flash", epochs=3))
    settings = base.overridden_by_metadata(
        {
            "autotune-epochs": "abc",
            "autotune-adapter-size": " 8 ",
            "autotune-model": "gemini-2.5-pro",
            "other": "x",
        }
    )
    assert settings.model == "gemini-2.5-pro"
    assert settings.epochs == "abc"
    assert settings.adapter_size == 8
    assert base.adapter_size is None  # 0 in the defaults means "the model's default"


def test_force_flag():
    assert is_forced({"autotune-force": "true"})
    assert not is_forced({"autotune-force": "no"})
    assert not is_forced(None)


def _request(**changes):
    settings = TuningSettings(model="gemini-2.5-flash", epochs=3)
    training = DatasetRef(
        bucket="b", object="incoming/a.jsonl", generation="7", sha256="ab" * 32, size=10
    )
    ckey = content_key(training.sha256, None, settings)
    fields: dict[str, Any] = dict(
        idempotency_key=idempotency_key("b", training.object, "7", ckey),
        content_key=ckey,
        training=training,
        settings=settings,
        report_uri="gs://b/reports/incoming/a.jsonl/7.json",
        requested_at="2026-11-25T00:00:00Z",
    )
    fields.update(changes)
    return TuningRequest(**fields)


def test_tuning_request_round_trip_and_keys_fit_vertex_labels():
    request = _request()
    assert decode_request(encode_request(request)) == request
    assert (
        len(request.idempotency_key) <= 63
        and request.idempotency_key == request.idempotency_key.lower()
    )


def test_content_key_ignores_name_but_not_settings():
    s1 = TuningSettings(model="gemini-2.5-flash", epochs=3)
    s2 = TuningSettings(model="gemini-2.5-flash", epochs=4)
    assert content_key("x", None, s1) == content_key("x", None, s1)
    assert content_key("x", None, s1) != content_key("x", None, s2)
    assert idempotency_key("b", "o", "1", "k") != idempotency_key("b", "o", "2", "k")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"{}", "missing required field"),
        (b"[]", "Expected `object`"),
    ],
)
def test_malformed_tuning_requests_are_named(data, message):
    with pytest.raises(InvalidTuningRequest, match=message):
        decode_request(data)


def test_unknown_field_and_wrong_version_are_rejected():
    raw = json.loads(encode_request(_request()))
    with pytest.raises(InvalidTuningRequest, match="unknown"):
        decode_request(json.dumps({**raw, "extra": 1}).encode())
    with pytest.raises(InvalidTuningRequest, match="schema_version"):
        decode_request(json.dumps({**raw, "schema_version": 99}).encode())


def test_event_binary_binding_and_stable_id():
    payload = EventPayload(dataset_uri="gs://b/incoming/a.jsonl", generation="7", error_count=0)
    first = make_event(EventType.DATASET_ACCEPTED, payload)
    second = make_event(EventType.DATASET_ACCEPTED, payload)
    assert first.id == second.id
    assert make_event(EventType.DATASET_REJECTED, payload).id != first.id
    data, attributes = to_pubsub_message(first)
    assert attributes["ce-type"] == "autotune.dataset.v1.accepted"
    assert attributes["ce-subject"] == "gs://b/incoming/a.jsonl"
    assert set(attributes) == {
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "ce-datacontenttype",
    }
    assert json.loads(data) == {
        "dataset_uri": "gs://b/incoming/a.jsonl",
        "generation": "7",
        "error_count": 0,
    }
    assert from_pubsub_message(data, attributes) == first


def test_traceparent_becomes_the_cloud_logging_trace_field():
    from autotune.structured_log import trace_from_traceparent

    assert trace_from_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "p"
    ) == ("projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736")
    assert trace_from_traceparent(None, "p") is None
    assert trace_from_traceparent("garbage", "p") is None
