"""The documented notifications contract matches the code: the JSON schema in docs/, and the
opening section of docs/notifications.md naming every event type, attribute and payload field."""

from __future__ import annotations

import json
from pathlib import Path

from autotune.events import (
    EventPayload,
    EventType,
    make_event,
    payload_json_schema,
    to_pubsub_message,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "docs" / "tuning-events.schema.json"
REGENERATE = (
    'python -c "import json; from autotune.events import payload_json_schema; '
    "open('docs/tuning-events.schema.json', 'w').write(json.dumps(payload_json_schema(), indent=2) + '\\n')\""
)


def notifications_section() -> str:
    text = (REPO / "docs" / "notifications.md").read_text(encoding="utf-8")
    start = text.index("# Notifications")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_schema_file_is_the_payload_schema() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == payload_json_schema(), (
        f"regenerate it: {REGENERATE}"
    )


def test_docs_name_every_event_type_attribute_and_payload_field() -> None:
    section = notifications_section()
    missing = [t.value for t in EventType if t.value not in section]
    _, attributes = to_pubsub_message(
        make_event(EventType.DATASET_ACCEPTED, EventPayload(dataset_uri="gs://b/o", generation="1"))
    )
    missing += [a for a in attributes if a not in section]
    missing += [f for f in EventPayload.__struct_fields__ if f"`{f}`" not in section]
    assert missing == [], f"docs/notifications.md does not document: {missing}"
    assert "(tuning-events.schema.json)" in section
