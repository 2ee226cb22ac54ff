"""The local stand-in for Eventarc: Pub/Sub push in, binary-mode CloudEvent out.

Each route receives a Pub/Sub push subscription's requests and POSTs the CloudEvent that
Eventarc would deliver to the function behind it:

- kind "storage": fake-gcs-server's object notification (JSON API object in the data,
  bucketId/objectId/eventType attributes) becomes `google.cloud.storage.object.v1.finalized`
  with `ce-source: //storage.googleapis.com/projects/_/buckets/B` and `ce-subject: objects/NAME`;
- kind "pubsub": the message becomes `google.cloud.pubsub.topic.v1.messagePublished` whose data
  is `{"message": {...}, "subscription": ...}`, as on Google Cloud.

The push request is answered with the function's verdict: 2xx acknowledges the message, anything
else (or no answer) makes Pub/Sub deliver it again, then dead-letter it. So the functions run
unchanged here and on Google Cloud.

    python -m autotune_local.event_bridge --port P --routes '{"validate": {"kind": "storage", "target": "http://..."}}'
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from autotune import structured_log

STORAGE_EVENT_TYPES = {
    "OBJECT_FINALIZE": "google.cloud.storage.object.v1.finalized",
    "OBJECT_DELETE": "google.cloud.storage.object.v1.deleted",
    "OBJECT_METADATA_UPDATE": "google.cloud.storage.object.v1.metadataUpdated",
    "OBJECT_ARCHIVE": "google.cloud.storage.object.v1.archived",
}
PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
# Below the subscriptions' ack deadline (600 s), so a slow function is not delivered twice at once.
FORWARD_TIMEOUT_SECONDS = 540


class UnreadablePush(ValueError):
    pass


def cloud_event_for(route: dict, project: str, push: dict) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the binary-mode CloudEvent for one Pub/Sub push request."""
    message = push.get("message")
    if not isinstance(message, dict) or "messageId" not in message:
        raise UnreadablePush("push body has no message.messageId")
    attributes = message.get("attributes") or {}
    time = attributes.get("eventTime") or message.get("publishTime", "")
    if route["kind"] == "storage":
        bucket, name = attributes.get("bucketId"), attributes.get("objectId")
        if not bucket or not name:
            raise UnreadablePush("storage notification without bucketId/objectId attributes")
        event_type = STORAGE_EVENT_TYPES.get(attributes.get("eventType", ""))
        if event_type is None:
            raise UnreadablePush(f"unknown storage eventType {attributes.get('eventType')!r}")
        headers = {
            "ce-specversion": "1.0",
            "ce-id": message["messageId"],
            "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "ce-type": event_type,
            "ce-subject": header_value(f"objects/{name}"),
            "ce-time": time,
            "ce-bucket": bucket,
            "Content-Type": "application/json",
        }
        return headers, base64.b64decode(message.get("data", ""))
    headers = {
        "ce-specversion": "1.0",
        "ce-id": message["messageId"],
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{route['topic']}",
        "ce-type": PUBSUB_EVENT_TYPE,
        "ce-time": time,
        "Content-Type": "application/json",
    }
    body = {"message": message, "subscription": push.get("subscription", "")}
    return headers, json.dumps(body).encode()


def header_value(text: str) -> str:
    """A ce-* string as the CloudEvents HTTP binding writes it: percent-encoded outside printable
    ASCII (and space, '"', '%'). An object name may hold any Unicode; an HTTP header may not."""
    return urllib.parse.quote(text, safe="!#$&'()*+,/:;<=>?@[\\]^`{|}~")


def forward(target: str, headers: dict[str, str], body: bytes) -> int:
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 503


def make_handler(routes: dict[str, dict], project: str) -> type[BaseHTTPRequestHandler]:
    class BridgeHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200 if self.path == "/healthz" else 404)

        def do_POST(self) -> None:
            name = self.path.strip("/").split("?", 1)[0]
            route = routes.get(name)
            if route is None:
                self._answer(404)
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                push = json.loads(raw)
                headers, body = cloud_event_for(route, project, push)
            except (ValueError, UnreadablePush) as exc:
                # Not acknowledged: after the retries the message waits in the dead-letter topic.
                structured_log.error("push request not understood", route=name, error=str(exc))
                self._answer(400)
                return
            status = forward(route["target"], headers, body)
            fields = {
                "route": name,
                "ce_id": headers["ce-id"],
                "ce_type": headers["ce-type"],
                "status": status,
            }
            if "ce-subject" in headers:
                fields["subject"] = headers["ce-subject"]
            if 200 <= status < 300:
                structured_log.info("delivered", **fields)
                self._answer(204)
            else:
                structured_log.warning(
                    "function refused the event; Pub/Sub will deliver it again", **fields
                )
                self._answer(502)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(
            self, format: str, *args: object
        ) -> None:  # the stdlib names this parameter
            pass  # one structured line per delivery is enough

    return BridgeHandler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument(
        "--routes", required=True, help="JSON: name -> {kind: storage|pubsub, target: URL, topic}"
    )
    args = parser.parse_args(argv)
    routes = json.loads(args.routes)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(routes, args.project))
    server.daemon_threads = True
    structured_log.info("event bridge listening", port=args.port, routes=sorted(routes))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
