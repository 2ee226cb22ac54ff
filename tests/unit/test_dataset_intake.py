"""The validate function's core: which objects are datasets, settings layering, reports, events,
the tuning request, and the order of effects. Storage and Pub/Sub are in-memory doubles; the
validator is the real one."""

from __future__ import annotations

import json

import msgspec
import pytest
from intake_doubles import BUCKET, NOW, MemoryBus, MemoryStore

from autotune.config import PipelineConfig, TuningDefaults
from autotune.events import EventType
from autotune.intake.manifest import InvalidManifest, parse_manifest, resolve_settings
from autotune.intake.objects import (
    StoredObject,
    UnreadableEvent,
    classify,
    report_object_name,
    stored_object_from_event,
)
from autotune.intake.ports import IntakeDeps
from autotune.intake.rejections import INVALID_MANIFEST, OBJECT_NOT_FOUND
from autotune.intake.upload import process_upload
from autotune.validation import DatasetSource, validate_dataset

CONFIG = PipelineConfig(
    project="p", bucket=BUCKET, defaults=TuningDefaults(model="gemini-3.5-flash", epochs=3)
)


def example(i: int) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": f"Question {i}?"}]},
            {"role": "model", "parts": [{"text": f"Answer {i}."}]},
        ]
    }


def jsonl(n: int = 20) -> bytes:
    return b"".join(json.dumps(example(i)).encode() + b"\n" for i in range(n))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def bus(store: MemoryStore) -> MemoryBus:
    return MemoryBus(store.effects)


def run(
    store: MemoryStore, bus: MemoryBus, uploaded: StoredObject, config: PipelineConfig = CONFIG
):
    deps = IntakeDeps(
        store=store,
        bus=bus,
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        now=lambda: NOW,
    )
    return process_upload(uploaded, config, deps)


# --- which objects are datasets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("incoming/a.jsonl", "dataset"),
        ("incoming/team/a.jsonl", "dataset"),
        ("incoming/a.tuning.json", "manifest"),
        ("incoming/team/parts/train.jsonl", "ignored"),
        ("incoming/parts/train.jsonl", "ignored"),
        ("incoming/partsbin/train.jsonl", "dataset"),
        ("incoming/a.json", "ignored"),
        ("incoming/a.jsonl.tmp", "ignored"),
        ("incoming/folder/", "ignored"),
        ("reports/incoming/a.jsonl/1.json", "ignored"),
        ("a.jsonl", "ignored"),
        ("outputs/incoming/a.jsonl", "ignored"),
    ],
)
def test_classify(name: str, kind: str) -> None:
    assert classify(name, "incoming/")[0] == kind


def test_report_path_follows_the_dataset_path_and_generation() -> None:
    assert (
        report_object_name("reports/", "incoming/a.jsonl", "17")
        == "reports/incoming/a.jsonl/17.json"
    )


def test_event_data_is_read_from_a_storage_object_resource() -> None:
    obj = stored_object_from_event(
        {
            "bucket": "b",
            "name": "incoming/x.jsonl",
            "generation": "123",
            "size": "45",
            "metadata": {"autotune-epochs": "2"},
        }
    )
    assert (obj.bucket, obj.name, obj.generation, obj.size, obj.metadata) == (
        "b",
        "incoming/x.jsonl",
        "123",
        45,
        {"autotune-epochs": "2"},
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        "text",
        {},
        {"bucket": "b"},
        {"bucket": "b", "name": "x"},
        {"bucket": "b", "name": "x", "generation": "abc"},
    ],
)
def test_unreadable_event_data_is_named(data: object) -> None:
    with pytest.raises(UnreadableEvent):
        stored_object_from_event(data)


# --- settings and manifests --------------------------------------------------------------------


def test_settings_layer_defaults_then_manifest_then_metadata() -> None:
    manifest = parse_manifest(
        b'{"training": "incoming/p/parts/t.jsonl", "settings": {"epochs": 5, "adapter_size": 4, "model": "gemini-2.5-pro"}}',
        bucket=BUCKET,
    )
    settings = resolve_settings(CONFIG, manifest, {"autotune-epochs": "7", "unrelated": "x"})
    assert (settings.model, settings.epochs, settings.adapter_size, settings.region) == (
        "gemini-2.5-pro",
        7,
        4,
        "us-central1",
    )


def test_manifest_accepts_object_names_and_uris_of_its_own_bucket() -> None:
    manifest = parse_manifest(
        json.dumps(
            {
                "training": f"gs://{BUCKET}/incoming/p/parts/t.jsonl",
                "validation": "incoming/p/parts/v.jsonl",
            }
        ).encode(),
        bucket=BUCKET,
    )
    assert (manifest.training, manifest.validation, dict(manifest.settings)) == (
        "incoming/p/parts/t.jsonl",
        "incoming/p/parts/v.jsonl",
        {},
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b"{}", '"training" is missing'),
        (b'{"training": 3}', "object name"),
        (b'{"training": "gs://other/x.jsonl"}', "bucket other"),
        (b'{"training": "a.jsonl", "extra": 1}', "unknown key(s) extra"),
        (b'{"training": "a.jsonl", "settings": {"epoch": 1}}', "unknown setting(s) epoch"),
        (b'{"training": "a.jsonl", "settings": []}', '"settings" must be an object'),
    ],
)
def test_bad_manifests_are_named(text: bytes, says: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(text, bucket=BUCKET)
    assert says in str(caught.value)


# --- one upload, start to end ------------------------------------------------------------------


def test_good_dataset_is_accepted_request_published_before_event(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put(
        "incoming/good.jsonl", jsonl(20), {"autotune-epochs": "2", "autotune-force": "true"}
    )
    outcome = run(store, bus, uploaded)

    report_name = f"reports/incoming/good.jsonl/{uploaded.generation}.json"
    assert outcome.decision == "accepted"
    report = json.loads(store.reports[report_name])
    pinned_name = f"reports/pinned/{report['files']['train']['sha256']}.jsonl"
    page_name = f"reports/incoming/good.jsonl/{uploaded.generation}.html"
    assert store.effects == [
        f"pin {pinned_name}",
        f"page {page_name}",
        f"report {report_name}",
        "request",
        "event autotune.dataset.v1.accepted",
    ]
    assert report["valid"] is True
    (request,) = bus.requests
    assert request.training.uri == f"gs://{BUCKET}/incoming/good.jsonl"
    assert request.training.training_uri == f"gs://{BUCKET}/{pinned_name}"
    assert store.objects[pinned_name][1] == store.objects["incoming/good.jsonl"][1]
    assert request.training.generation == uploaded.generation
    assert request.training.sha256 == report["files"]["train"]["sha256"]
    assert request.settings.epochs == 2 and request.force is True
    assert request.report_uri == f"gs://{BUCKET}/{report_name}"
    assert request.example_count == 20
    (event,) = bus.events
    assert event.type is EventType.DATASET_ACCEPTED
    assert event.subject == request.dataset_uri
    assert event.payload.idempotency_key == request.idempotency_key
    assert event.payload.generation == uploaded.generation


def test_same_bytes_and_settings_give_the_same_content_key(
    store: MemoryStore, bus: MemoryBus
) -> None:
    run(store, bus, store.put("incoming/a.jsonl", jsonl(20)))
    run(store, bus, store.put("incoming/b.jsonl", jsonl(20)))
    run(store, bus, store.put("incoming/c.jsonl", jsonl(20), {"autotune-epochs": "4"}))
    first, second, third = bus.requests
    assert first.content_key == second.content_key != third.content_key
    assert first.idempotency_key != second.idempotency_key  # another object: another dataset


def test_bad_lines_are_a_rejection_with_a_report_and_no_request(
    store: MemoryStore, bus: MemoryBus
) -> None:
    data = jsonl(20) + b"{broken\n"
    uploaded = store.put("incoming/bad.jsonl", data)
    outcome = run(store, bus, uploaded)

    assert outcome.decision == "rejected"
    assert bus.requests == []
    (event,) = bus.events
    assert event.type is EventType.DATASET_REJECTED
    counts, error_count = event.payload.counts, event.payload.error_count
    assert counts is not None and counts["invalid_json"] == 1
    assert error_count is not None and error_count >= 1
    report = json.loads(store.reports[f"reports/incoming/bad.jsonl/{uploaded.generation}.json"])
    assert any(e["code"] == "invalid_json" and e["line"] == 21 for e in report["errors"])


def test_bad_settings_in_metadata_are_a_rejection(store: MemoryStore, bus: MemoryBus) -> None:
    uploaded = store.put(
        "incoming/s.jsonl",
        jsonl(20),
        {"autotune-model": "gemini-9-ultra", "autotune-epochs": "many"},
    )
    outcome = run(store, bus, uploaded)
    assert outcome.decision == "rejected"
    counts = bus.events[0].payload.counts
    assert counts is not None and "unsupported_model" in counts


def test_no_dataset_content_in_events_or_outcome(store: MemoryStore, bus: MemoryBus) -> None:
    secret = "Zebra-Secret-Phrase"
    line = json.dumps({"contents": [{"role": "user", "parts": [{"text": secret}]}]}).encode()
    uploaded = store.put("incoming/leak.jsonl", jsonl(20) + line + b"\n")
    outcome = run(store, bus, uploaded)
    assert outcome.decision == "rejected"
    assert secret not in msgspec.json.encode(bus.events[0].payload).decode()
    assert secret not in json.dumps(dict(outcome.fields), default=str) + outcome.message


def test_objects_that_are_not_datasets_are_ignored_without_effects(
    store: MemoryStore, bus: MemoryBus
) -> None:
    for name in (
        "notes.txt",
        "reports/incoming/a.jsonl/1.json",
        "incoming/p/parts/train.jsonl",
        "incoming/readme.md",
    ):
        outcome = run(store, bus, store.put(name, jsonl(20)))
        assert outcome.decision == "ignored", name
    assert store.effects == [] and bus.events == []


def test_object_of_another_bucket_is_ignored(store: MemoryStore, bus: MemoryBus) -> None:
    other = StoredObject(bucket="elsewhere", name="incoming/a.jsonl", generation="1", size=1)
    assert run(store, bus, other).decision == "ignored"


def test_dataset_over_the_size_limit_is_rejected_without_reading(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/huge.jsonl", jsonl(20))
    huge = StoredObject(
        bucket=BUCKET, name=uploaded.name, generation=uploaded.generation, size=2 * 1024**3
    )
    outcome = run(store, bus, huge)
    assert outcome.decision == "rejected"
    counts = bus.events[0].payload.counts
    assert counts is not None and counts["file_too_large"] == 1
    assert store.chunks_read == 0


def test_manifest_triggers_the_files_it_names_with_its_settings(
    store: MemoryStore, bus: MemoryBus
) -> None:
    train = store.put("incoming/proj/parts/train.jsonl", jsonl(20))
    validation = store.put("incoming/proj/parts/validation.jsonl", jsonl(5))
    manifest = store.put(
        "incoming/proj.tuning.json",
        json.dumps(
            {
                "training": "incoming/proj/parts/train.jsonl",
                "validation": "incoming/proj/parts/validation.jsonl",
                "settings": {"epochs": 6, "display_name": "support bot"},
            }
        ).encode(),
        {"autotune-adapter-size": "4"},
    )

    outcome = run(store, bus, manifest)

    assert outcome.decision == "accepted"
    (request,) = bus.requests
    assert (request.training.object, request.training.generation) == (train.name, train.generation)
    assert request.validation is not None
    assert (request.validation.object, request.validation.generation) == (
        validation.name,
        validation.generation,
    )
    assert (
        request.settings.epochs,
        request.settings.adapter_size,
        request.settings.display_name,
    ) == (6, 4, "support bot")
    assert (
        request.report_uri
        == f"gs://{BUCKET}/reports/incoming/proj.tuning.json/{manifest.generation}.json"
    )
    (event,) = bus.events
    assert event.subject == f"gs://{BUCKET}/{train.name}"


def test_two_manifests_on_one_training_file_publish_distinct_event_ids(
    store: MemoryStore, bus: MemoryBus
) -> None:
    store.put("incoming/p/parts/t.jsonl", jsonl(20))
    for epochs in (2, 3):
        body = json.dumps(
            {"training": "incoming/p/parts/t.jsonl", "settings": {"epochs": epochs}}
        ).encode()
        run(store, bus, store.put(f"incoming/p{epochs}.tuning.json", body))
    first, second = bus.events
    assert first.id != second.id


def test_unusable_manifest_is_rejected_with_a_report_about_the_manifest(
    store: MemoryStore, bus: MemoryBus
) -> None:
    manifest = store.put("incoming/x.tuning.json", b'{"training": 1}')
    outcome = run(store, bus, manifest)
    assert outcome.decision == "rejected"
    (event,) = bus.events
    assert event.subject == manifest.uri and event.payload.counts == {INVALID_MANIFEST: 1}
    report = json.loads(store.reports[f"reports/incoming/x.tuning.json/{manifest.generation}.json"])
    assert report["valid"] is False and report["errors"][0]["code"] == INVALID_MANIFEST


def test_oversized_manifest_is_rejected_without_reading(store: MemoryStore, bus: MemoryBus) -> None:
    manifest = store.put("incoming/x.tuning.json", b"{}")
    huge = StoredObject(
        bucket=BUCKET, name=manifest.name, generation="1", size=10**9
    )  # generation 1 is gone: a read would fail
    outcome = run(store, bus, huge)
    assert outcome.decision == "rejected"
    assert bus.events[0].payload.counts == {INVALID_MANIFEST: 1}


def test_manifest_naming_a_missing_training_file_is_rejected(
    store: MemoryStore, bus: MemoryBus
) -> None:
    manifest = store.put("incoming/x.tuning.json", b'{"training": "incoming/x/parts/nope.jsonl"}')
    run(store, bus, manifest)
    assert bus.events[0].payload.counts == {OBJECT_NOT_FOUND: 1}
    assert bus.requests == []


def test_missing_validation_file_named_by_metadata_is_rejected(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put(
        "incoming/a.jsonl", jsonl(20), {"autotune-validation": "incoming/parts/missing.jsonl"}
    )
    run(store, bus, uploaded)
    assert bus.events[0].type is EventType.DATASET_REJECTED
    assert bus.events[0].payload.counts == {OBJECT_NOT_FOUND: 1}
    assert bus.events[0].subject == uploaded.uri


def test_object_replaced_before_it_is_read_is_left_to_the_newer_upload(
    store: MemoryStore, bus: MemoryBus
) -> None:
    first = store.put("incoming/a.jsonl", jsonl(20))
    store.put("incoming/a.jsonl", jsonl(21))  # a newer generation replaces it
    outcome = run(store, bus, first)
    assert outcome.decision == "superseded"
    assert bus.events == [] and store.reports == {}


def test_failed_request_publish_raises_and_announces_nothing(store: MemoryStore) -> None:
    bus = MemoryBus(store.effects, fail_requests=True)
    with pytest.raises(ConnectionError):
        run(store, bus, store.put("incoming/a.jsonl", jsonl(20)))
    assert bus.events == []  # redelivery will redo it all; no "accepted" without a request


# --- integrity: what is validated is what is tuned; no text poisons intake -------------------------


def codes_of(bus: MemoryBus) -> dict[str, int]:
    (event,) = bus.events
    assert event.type is EventType.DATASET_REJECTED
    assert event.payload.counts is not None
    return dict(event.payload.counts)


def test_an_object_stored_with_a_content_encoding_is_refused_with_its_own_code(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/zipped.jsonl", jsonl(20), content_encoding="gzip")
    assert run(store, bus, uploaded).decision == "rejected"
    assert codes_of(bus) == {"content_encoded": 1}
    assert store.chunks_read == 0 and not bus.requests


def test_content_encoding_set_after_the_read_is_caught_on_the_pinned_copy(
    store: MemoryStore, bus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = store.put("incoming/patched.jsonl", jsonl(20))
    original_pin = store.pin

    def pin_after_patch(name, generation, pinned_name):
        obj, data = store.objects[name]
        store.objects[name] = (
            StoredObject(**{**obj.__dict__, "content_encoding": "gzip"}),
            data,
        )  # a metadata patch
        return original_pin(name, generation, pinned_name)

    monkeypatch.setattr(store, "pin", pin_after_patch)
    assert run(store, bus, uploaded).decision == "rejected"
    assert codes_of(bus) == {"content_encoded": 1} and not bus.requests


def test_an_overwrite_after_validation_leaves_the_pinned_copy_as_validated(
    store: MemoryStore, bus: MemoryBus
) -> None:
    uploaded = store.put("incoming/kept.jsonl", jsonl(20))
    run(store, bus, uploaded)
    (request,) = bus.requests
    store.put("incoming/kept.jsonl", b"overwritten\n")
    assert request.training.pinned_object is not None
    pinned, data = store.objects[request.training.pinned_object]
    assert data == jsonl(20) and pinned.generation == request.training.pinned_generation


@pytest.mark.parametrize("field", ["training", "validation", "model", "display_name", "region"])
def test_a_lone_surrogate_anywhere_in_a_manifest_is_a_rejection_with_a_report(
    store: MemoryStore, bus: MemoryBus, field: str
) -> None:
    store.put("incoming/s/parts/train.jsonl", jsonl(20))
    doc: dict = {"training": "incoming/s/parts/train.jsonl", "settings": {}}
    if field in {"training", "validation"}:
        doc[field] = "incoming/s/parts/train.jsonl\ud800"
    else:
        doc["settings"][field] = "x\ud800"
    uploaded = store.put("incoming/s.tuning.json", json.dumps(doc).encode())
    assert run(store, bus, uploaded).decision == "rejected"
    assert codes_of(bus) == {"unusable_text": 1}
    report = json.loads(store.reports[f"reports/incoming/s.tuning.json/{uploaded.generation}.json"])
    assert report["valid"] is False and "surrogate" in report["errors"][0]["message"]


@pytest.mark.parametrize(
    "metadata",
    [
        {"autotune-display-name": "n" * 129},
        {"autotune-model": "gemini\x1b[2J"},
        {"autotune-epochs": "3" * 2000},
    ],
)
def test_unusable_metadata_text_is_a_rejection_with_a_report(
    store: MemoryStore, bus: MemoryBus, metadata: dict
) -> None:
    uploaded = store.put("incoming/meta.jsonl", jsonl(20), metadata)
    assert run(store, bus, uploaded).decision == "rejected"
    assert codes_of(bus) == {"unusable_text": 1} and not bus.requests


def test_a_manifest_naming_the_pipelines_own_output_is_invalid(
    store: MemoryStore, bus: MemoryBus
) -> None:
    store.put("reports/pinned/" + "a" * 64 + ".jsonl", jsonl(20))
    uploaded = store.put(
        "incoming/own.tuning.json",
        json.dumps({"training": "reports/pinned/" + "a" * 64 + ".jsonl"}).encode(),
    )
    assert run(store, bus, uploaded).decision == "rejected"
    assert codes_of(bus) == {"invalid_manifest": 1}


class MemoryMedia:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def stat(self, uris):
        return {
            uri: (
                len(found[1]) if (found := self.store.objects.get(uri.split("/", 3)[3])) else None
            )
            for uri in uris
        }


@pytest.mark.parametrize(
    "target",
    ["reports/incoming/x.jsonl/1.json", "incoming/other.tuning.json", "incoming/media-self.jsonl"],
)
def test_media_pointing_at_the_pipelines_own_objects_is_refused(
    store: MemoryStore, bus: MemoryBus, target: str
) -> None:
    store.put(target, b"{}")
    rows = [
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "fileData": {
                                "mimeType": "image/png",
                                "fileUri": f"gs://{BUCKET}/{target}",
                            }
                        },
                        {"text": f"q{i}"},
                    ],
                },
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        }
        for i in range(20)
    ]
    uploaded = store.put(
        "incoming/media-self.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    )
    deps = IntakeDeps(
        store=store,
        bus=bus,
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        now=lambda: NOW,
        media=MemoryMedia(store),
    )
    assert process_upload(uploaded, CONFIG, deps).decision == "rejected"
    # One per referencing line: each of the 20 lines names the object.
    assert codes_of(bus).get("media_is_pipeline_object") == 20 and "file_not_found" not in codes_of(
        bus
    )
