"""Google's own tuning examples, as datasets: every case names the page or notebook it comes
from (read 2026-12-02) and asserts the verdict Vertex AI gives or documents for it.

The examples are rebuilt from the pages' and notebooks' text (no code of theirs is copied);
where the copy of a page read had its example cut off (the function-calling one after the
model's functionCall), the rest follows the shape the page describes. Each example is repeated
to 100 lines (numbered, so no duplicate warnings, and no few_examples
warning unless the case is about it). Pages:
  PREPARE   https://documentation.s3ns.fr/gemini-enterprise-agent-platform/models/gemini-supervised-tuning-prepare
  FUNCTIONS https://cloud.google.com/vertex-ai/generative-ai/docs/models/tune-function-calling
  VIDEO     https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/tuning/video
  IMAGE     https://docs.cloud.google.com/gemini-enterprise-agent-platform/models/tuning/image
  CONTENT   github:googleapis/googleapis google/cloud/aiplatform/v1/content.proto (Content.role optional)
  NOTEBOOKS github:GoogleCloudPlatform/generative-ai gemini/tuning/*.ipynb at 23b75dab2c25
  ISSUE6127 https://github.com/googleapis/python-aiplatform/issues/6127
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, validate_dataset

NOTEBOOKS = "github:GoogleCloudPlatform/generative-ai@23b75dab2c25 gemini/tuning/"


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    example: dict
    model: str
    codes: frozenset[str] = field(default_factory=frozenset)  # exactly these codes in the report
    valid: bool = True
    rows: int = 100


def text(t: str) -> dict:
    return {"text": t}


def image(uri: str, mime: str = "image/jpeg") -> dict:
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


PREPARE_EXAMPLE = {
    "systemInstruction": {
        "role": "string",
        "parts": [text("You are a pirate dog named Captain Barktholomew.")],
    },
    "contents": [
        {"role": "user", "parts": [text("Hi")]},
        {"role": "model", "parts": [text("Argh! What brings ye to my ship?")]},
        {"role": "user", "parts": [text("What's your name?")]},
        {
            "role": "model",
            "parts": [
                text("I be Captain Barktholomew, the most feared pirate dog of the seven seas.")
            ],
        },
    ],
}

FUNCTION_CALL = {
    "functionCall": {
        "name": "get_product_sku",
        "args": {"product_name": "Pixel 8 Pro 128GB", "color": "White"},
    }
}
FUNCTION_CALL_EXAMPLE = {
    "system_instruction": {
        "role": "system",
        "parts": [text("You are an assistant that helps users find the best product for them.")],
    },
    "contents": [
        {
            "role": "user",
            "parts": [text("Do you have the White Pixel 8 Pro 128GB in stock in the US?")],
        },
        {"role": "model", "parts": [FUNCTION_CALL]},
        {
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_product_sku",
                        "response": {"output": "Yes, in stock."},
                    }
                }
            ]
        },
        {
            "role": "model",
            "parts": [text("Yes, we have the White Pixel 8 Pro 128GB in stock in the US.")],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_product_sku",
                    "description": "Get the available inventory for a Google products, e.g: Pixel phones, Pixel Watches, Google Home etc",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "product_name": {"type": "STRING"},
                            "color": {"type": "STRING"},
                        },
                    },
                }
            ]
        }
    ],
}
PARALLEL_CALLS_EXAMPLE = {
    "contents": [
        {"role": "user", "parts": [text("Weather in Lisbon and in Porto?")]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Porto"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}},
                {"functionResponse": {"name": "get_weather", "response": {"sky": "rain"}}},
            ],
        },
        {"role": "model", "parts": [text("Clear in Lisbon, rain in Porto.")]},
    ],
    "tools": [
        {"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}
    ],
}
VIDEO_EXAMPLE: dict[str, Any] = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {
                    "fileData": {
                        "mimeType": "video/mp4",
                        "fileUri": "gs://cloud-samples-data/video/animals.mp4",
                    },
                    "videoMetadata": {"startOffset": "5s", "endOffset": "20s"},
                },
                text("Describe what the animals do in this clip."),
            ],
        },
        {"role": "model", "parts": [text("A tiger walks to the water and drinks.")]},
    ],
    "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
}
CAPTIONING_EXAMPLE = {  # sft_gemini_on_image_captioning: the example line of its "Prepare" section
    "contents": [
        {
            "role": "user",
            "parts": [
                image("gs://bucketname/data/vision_data/task/image_description/image/1.jpeg"),
                text("Describe this image that captures the essence of it."),
            ],
        },
        {"role": "model", "parts": [text("A person wearing a pink shirt and a long black skirt.")]},
    ],
}
MULTIPLE_IMAGES_EXAMPLE = {  # sft_gemini_on_multiple_images: its JSONL structure, role "string" and all
    "systemInstruction": {"role": "string", "parts": [text("Say something to the model.")]},
    "contents": [
        {
            "role": "user",
            "parts": [
                image("gs://path/to/image1", "image/png"),
                text("This is the image 1"),
                image("gs://path/to/image2", "image/png"),
                text("This is the image 2"),
            ],
        },
        {"role": "model", "parts": [text("The second image has one more chair.")]},
    ],
}
QA_EXAMPLE = {  # sft_gemini_qa: df_to_jsonl's line
    "systemInstruction": {
        "parts": [text("Answer the question from the context, in as few words as possible.")]
    },
    "contents": [
        {"role": "user", "parts": [text("When did Beyonce start becoming popular?")]},
        {"role": "model", "parts": [text("in the late 1990s")]},
    ],
}
ROLE_LESS_EXAMPLE = {
    "contents": [
        {"parts": [text("How are you?")]},
        {"role": "model", "parts": [text("I am good, thank you!")]},
    ]
}
PART_RESOLUTION_EXAMPLE = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {
                    **image("gs://b/receipt.png", "image/png"),
                    "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"},
                },
                text("Total?"),
            ],
        },
        {"role": "model", "parts": [text("42.10 EUR")]},
    ],
}
AUDIO_EXAMPLE = {
    "contents": [
        {
            "role": "user",
            "parts": [image("gs://b/call.m4a", "audio/m4a"), text("Transcribe the call.")],
        },
        {"role": "model", "parts": [text("Hello, I would like to change my order.")]},
    ],
}
HTTP_IMAGE_EXAMPLE = {
    "contents": [
        {
            "role": "user",
            "parts": [image("http://example.com/images/cat.jpeg"), text("What animal is this?")],
        },
        {"role": "model", "parts": [text("A cat.")]},
    ],
}
LEGACY_EXAMPLE = {
    "messages": [
        {"role": "system", "content": "You are a unit converter."},
        {"role": "user", "content": "3 miles in km?"},
        {"role": "model", "content": "4.83 km"},
    ]
}

CASES = [
    Case(
        "prepare-page example",
        "PREPARE: Dataset example for Gemini",
        PREPARE_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "function calling to generate text",
        "FUNCTIONS: Tuning function calling to generate text",
        FUNCTION_CALL_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "function calling on 2.5 Flash",
        "ISSUE6127: refused as unsupported modality [function call]",
        FUNCTION_CALL_EXAMPLE,
        "gemini-2.5-flash",
        frozenset({"function_calling_unsupported", "model_retired"}),
        valid=False,
    ),
    Case(
        "function calling on 2.0 Flash",
        "ISSUE6127: the same file tuned on 2.0 Flash (since retired)",
        FUNCTION_CALL_EXAMPLE,
        "gemini-2.0-flash-001",
        frozenset({"model_retired"}),
        valid=False,
    ),
    Case(
        "parallel function calls",
        "FUNCTIONS: parallel calls and their responses",
        PARALLEL_CALLS_EXAMPLE,
        "gemini-3.5-flash-lite",
    ),
    Case(
        "video with offsets and low resolution",
        "VIDEO: fileData video/mp4 with videoMetadata",
        VIDEO_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "image captioning notebook",
        NOTEBOOKS + "sft_gemini_on_image_captioning.ipynb",
        CAPTIONING_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "image captioning notebook, its model",
        NOTEBOOKS + "sft_gemini_on_image_captioning.ipynb (gemini-2.5-flash)",
        CAPTIONING_EXAMPLE,
        "gemini-2.5-flash",
        frozenset({"model_retired"}),
        valid=False,
    ),
    Case(
        "multiple images notebook, its model",
        NOTEBOOKS + "sft_gemini_on_multiple_images.ipynb (gemini-2.0-flash-001)",
        MULTIPLE_IMAGES_EXAMPLE,
        "gemini-2.0-flash-001",
        frozenset({"model_retired"}),
        valid=False,
    ),
    Case(
        "multiple images notebook",
        NOTEBOOKS + "sft_gemini_on_multiple_images.ipynb",
        MULTIPLE_IMAGES_EXAMPLE,
        "gemini-3.1-flash-lite",
    ),
    Case(
        "question answering notebook",
        NOTEBOOKS + "sft_gemini_qa.ipynb",
        QA_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "question answering notebook, its model",
        NOTEBOOKS + "sft_gemini_qa.ipynb (gemini-2.0-flash-001)",
        QA_EXAMPLE,
        "gemini-2.0-flash-001",
        frozenset({"model_retired"}),
        valid=False,
    ),
    Case(
        "single turn with no role",
        "CONTENT: role may be left unset; unset means user",
        ROLE_LESS_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "part-level media resolution",
        "PREPARE: part mediaResolution (Gemini 3)",
        PART_RESOLUTION_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "m4a audio",
        "Gemini model pages: audio/m4a is a supported audio type",
        AUDIO_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "public http image",
        "IMAGE: fileUri may be a publicly available HTTP or HTTPS URL",
        HTTP_IMAGE_EXAMPLE,
        "gemini-3.5-flash",
    ),
    Case(
        "16 examples",
        "PREPARE: start with 100 examples (a recommendation, no minimum)",
        QA_EXAMPLE,
        "gemini-3.5-flash",
        frozenset({"few_examples"}),
        rows=16,
    ),
    Case(
        "legacy messages on 1.0 Pro",
        "about-1x page: the messages format of gemini-1.0-pro-002 (retired)",
        LEGACY_EXAMPLE,
        "gemini-1.0-pro-002",
        frozenset({"model_retired"}),
        valid=False,
    ),
]


def rows(example: dict, n: int) -> bytes:
    out = []
    for i in range(n):
        row = copy.deepcopy(example)
        if "contents" in row:
            row["contents"][-1]["parts"].append({"text": f"({i})"})
        else:
            row["messages"][-1]["content"] += f" ({i})"
        out.append(json.dumps(row).encode())
    return b"\n".join(out) + b"\n"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_google_example_gets_the_documented_verdict(case: Case):
    assert case.source
    report = validate_dataset(
        DatasetSource(case.name, [rows(case.example, case.rows)]),
        settings=TuningSettings(model=case.model, epochs=3, region="us-central1"),
    )
    assert set(report.counts) == set(case.codes), report.errors[:5]
    assert report.valid is case.valid


def test_the_video_example_counts_its_clip_at_the_low_resolution_rate():
    """15 s of video at MEDIA_RESOLUTION_LOW: 15 x 64 tokens (the video tuning page), on top of the text."""
    one = validate_dataset(
        DatasetSource("v", [rows(VIDEO_EXAMPLE, 100)]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
    )
    no_offsets = copy.deepcopy(VIDEO_EXAMPLE)
    del no_offsets["contents"][0]["parts"][0]["videoMetadata"]
    other = validate_dataset(
        DatasetSource("v", [rows(no_offsets, 100)]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
    )
    assert (
        one.stats["train"]["tokens"]["total"] - other.stats["train"]["tokens"]["total"]
        == 100 * 15 * 64
    )
    assert one.stats["media_tokens"]["lower_bound_examples"] == 0
    assert other.stats["media_tokens"]["lower_bound_examples"] == 100
