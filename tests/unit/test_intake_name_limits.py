"""Object names at the edge of Cloud Storage's 1024-byte limit: a dataset whose report name or
gs:// URI (every event's ce-subject, a Pub/Sub attribute of at most 1024 bytes) would pass the
limit is rejected at once with the reason, instead of failing every publish and being retried
into the dead-letter topic. Just under the limit, it is validated as usual."""

import json

from test_dataset_intake import BUCKET, CONFIG, MemoryBus, MemoryStore, jsonl, run

from autotune.intake.objects import NAME_LIMIT_BYTES, name_too_long, report_object_name


def name_of_bytes(size: int) -> str:
    """incoming/<é...>/<x...>.jsonl of exactly `size` UTF-8 bytes (é is two bytes)."""
    head, tail = "incoming/", ".jsonl"
    wide = "é" * ((size - len(head) - len(tail) - 1) // 4)
    name = f"{head}{wide}/"
    return name + "x" * (size - len(name.encode()) - len(tail)) + tail


GENERATION = 1795571515241226  # 16 digits, like a Cloud Storage generation


def store_with_real_generations() -> MemoryStore:
    store = MemoryStore()
    store._generation = GENERATION
    return store


def longest_usable_name_bytes() -> int:
    # The report name adds the prefix, "/", the 16-digit generation and ".json".
    return NAME_LIMIT_BYTES - len(CONFIG.reports_prefix) - len(f"/{GENERATION}.json")


def test_name_of_exactly_the_storage_limit_is_rejected_with_the_reason_and_no_effect():
    store = MemoryStore()
    bus = MemoryBus(store.effects)
    uploaded = store.put(name_of_bytes(1024), jsonl())
    assert len(uploaded.name.encode()) == 1024
    outcome = run(store, bus, uploaded)
    assert outcome.decision == "rejected" and outcome.severity == "ERROR"
    assert "rename it" in outcome.message and "1024" in outcome.message
    assert store.effects == [] and store.chunks_read == 0  # no report, no event, nothing read


def test_longest_usable_name_is_validated_and_announced():
    store = store_with_real_generations()
    bus = MemoryBus(store.effects)
    uploaded = store.put(name_of_bytes(longest_usable_name_bytes()), jsonl())
    outcome = run(store, bus, uploaded)
    assert outcome.decision == "accepted"
    assert [e.type.value for e in bus.events] == ["autotune.dataset.v1.accepted"]
    one_more = store.put(name_of_bytes(longest_usable_name_bytes() + 1), jsonl(21))
    assert run(store, bus, one_more).decision == "rejected"


def test_the_uri_limit_counts_the_bucket_too():
    report = report_object_name("reports/", "incoming/a.jsonl", "1")
    assert name_too_long(f"gs://{BUCKET}/incoming/a.jsonl", report) is None
    problem = name_too_long("gs://" + "b" * 1020 + "/a.jsonl", report)
    assert problem is not None and "ce-subject" in problem


def test_manifest_naming_a_training_file_whose_uri_is_too_long_is_rejected_with_an_event():
    store = MemoryStore()
    bus = MemoryBus(store.effects)
    training = store.put("incoming/m/parts/" + "t" * 1000 + ".jsonl", jsonl())
    assert len(f"gs://{BUCKET}/{training.name}".encode()) > NAME_LIMIT_BYTES
    manifest = store.put("incoming/m.tuning.json", json.dumps({"training": training.name}).encode())
    outcome = run(store, bus, manifest)
    assert outcome.decision == "rejected"
    [event] = bus.events
    assert event.type.value == "autotune.dataset.v1.rejected" and event.subject == manifest.uri
    assert event.payload.counts == {"invalid_manifest": 1}
