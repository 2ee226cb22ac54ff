"""The event bridge writes ce-* headers as the CloudEvents HTTP binding asks (3.1.3.2): an
object name in any script, with spaces or quotes, becomes printable ASCII, so the POST to the
function can be sent at all (a raw non-Latin-1 header made the bridge fail every delivery)."""

import base64
import json
from urllib.parse import unquote

from autotune_local.event_bridge import cloud_event_for, header_value


def test_the_spec_example_is_encoded_as_the_spec_shows():
    assert header_value("Euro \u20ac \U0001f600") == "Euro%20%E2%82%AC%20%F0%9F%98%80"


def test_printable_ascii_stays_but_space_quote_and_percent_are_encoded():
    printable = "".join(chr(c) for c in range(0x21, 0x7F))
    encoded = header_value(printable)
    assert encoded == printable.replace("%", "%25").replace('"', "%22")
    assert header_value("a b\tc") == "a%20b%09c"


def test_storage_event_for_a_unicode_object_name_has_ascii_headers_that_decode_back():
    name = 'incoming/日本語 données "😀".jsonl'
    push = {
        "message": {
            "messageId": "1",
            "data": base64.b64encode(
                json.dumps({"bucket": "b", "name": name, "generation": "1"}).encode()
            ).decode(),
            "attributes": {"bucketId": "b", "objectId": name, "eventType": "OBJECT_FINALIZE"},
        }
    }
    headers, body = cloud_event_for({"kind": "storage"}, "p", push)
    for value in headers.values():
        value.encode("ascii")
        assert " " not in value
    assert unquote(headers["ce-subject"]) == f"objects/{name}"
    assert json.loads(body)["name"] == name  # the function reads the name from the data, unencoded
