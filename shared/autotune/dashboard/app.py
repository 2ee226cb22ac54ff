"""The read-only dashboard application: the page, its JSON, and the stored reports it links to.

GET (and HEAD) only: any other method is refused with 405 before a route runs, so nothing here
can change the pipeline. The page is rendered by Jinja2 with autoescaping, and its script writes
every value with textContent; a Content-Security-Policy allows that one inline script and
nothing fetched from elsewhere. Reports are served as stored, under a policy that runs no script.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from flask import Flask, Response, abort, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider

ALLOWED_METHODS = ("GET", "HEAD")
POLL_MILLISECONDS = 1500
PAGE_POLICY = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# A report is the dataset owner's document: shown as stored, in a sandbox, never running a script.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


class DashboardSource(Protocol):
    def view(self) -> dict[str, Any]: ...

    def report_object(self, name: str) -> bytes | None: ...


def create_app(source: DashboardSource, *, title: str = "autotune") -> Flask:
    # The page's template sits beside this module (package data); .html: Jinja2 autoescapes it.
    app = Flask(__name__, template_folder=".")
    assert isinstance(app.json, DefaultJSONProvider)  # a new app's provider, the one with sort_keys
    app.json.sort_keys = False

    @app.before_request
    def read_only() -> Response | None:
        if request.method not in ALLOWED_METHODS:
            response = jsonify(
                error=f"{request.method} is not allowed: this page is read-only (GET only)"
            )
            response.status_code = 405
            response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            return response
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/")
    def page() -> Response:
        nonce = secrets.token_urlsafe(16)
        view, problem = _view(source)
        html = render_template(
            "dashboard.html",
            view=view,
            problem=problem,
            nonce=nonce,
            title=title,
            poll=POLL_MILLISECONDS,
        )
        response = Response(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = PAGE_POLICY.format(nonce=nonce)
        return response

    @app.get("/api/state")
    def state() -> Response:
        view, problem = _view(source)
        if problem:
            response = jsonify(error=problem)
            response.status_code = 503
            return response
        return jsonify(view)

    @app.get("/report")
    def report() -> Response:
        name = request.args.get("name", "")
        data = source.report_object(name) if name else None
        if data is None:
            abort(404, description=f"no stored report named {name!r}")
        html = name.endswith(".html")
        response = Response(data, mimetype="text/html" if html else "application/json")
        response.headers["Content-Security-Policy"] = REPORT_POLICY
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(ok=True)

    return app


def _view(source: DashboardSource) -> tuple[dict[str, Any] | None, str]:
    try:
        return source.view(), ""
    except Exception as exc:
        return None, f"cannot read the pipeline: {type(exc).__name__}: {exc}"
