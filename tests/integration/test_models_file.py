"""A models file named in the configuration reaches the local stack's validate function (a
model the shipped catalog lacks is accepted), and a models file that does not load stops the
stack before any server starts, naming the file and the key."""

from __future__ import annotations

import json

import pytest
from sample_data import unique

from autotune.catalog import CatalogError
from autotune.events import EventType

pytestmark = pytest.mark.integration

NEW_MODEL = """
[sources.ours]
url = "https://example.com/release-notes"
read_on = "2026-12-02"

[models."gemini-4-flash"]
display_name = "Gemini 4 Flash"
dataset_format = "gemini"
modalities = ["text", "image"]
max_tokens_per_example = 131_072
max_validation_examples = 5_000
max_file_bytes = 1_073_741_824
adapter_sizes = [1, 2, 4]
regions = "gemini_3"
lifecycle = "preview"
source = "ours"
"""


def dataset() -> bytes:
    rows = [
        {
            "contents": [
                {"parts": [{"text": f"Question {i}?"}]},
                {"role": "model", "parts": [{"text": f"Answer {i}."}]},
            ]
        }
        for i in range(20)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_the_stack_validates_with_the_models_file(make_local_stack, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(NEW_MODEL)
    stack = make_local_stack(models_file=str(path), functions={"submit": None, "status": None})
    listener = stack.listen_events()
    try:
        name = f"incoming/{unique('new-model')}.jsonl"
        stack.upload(dataset(), name, metadata={"autotune-model": "gemini-4-flash"})
        uri = f"gs://{stack.bucket}/{name}"
        received = listener.wait_for(
            lambda r: (
                r.event.subject == uri
                and r.event.type in (EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED)
            ),
            timeout=60,
        )
        assert received.event.type is EventType.DATASET_ACCEPTED, received.event.payload.counts
    finally:
        listener.close()
        stack.stop()


def test_a_bad_models_file_stops_the_stack_naming_file_and_key(make_local_stack, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(
        NEW_MODEL.replace("max_tokens_per_example = 131_072", 'max_tokens_per_example = "many"')
    )
    with pytest.raises(CatalogError) as caught:
        make_local_stack(models_file=str(path))
    assert str(path) in str(
        caught.value
    ) and "models.gemini-4-flash: max_tokens_per_example" in str(caught.value)
