"""Rules for `fileData` parts: mime type, URI form, allow-listed buckets, per-example counts.

Whether an object exists, and its size, is asked of a MediaInspector once per report
(dataset.py), not here: these rules need nothing but the line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from autotune.catalog import Catalog, MediaKind, ModelSpec
from autotune.validation.codes import ErrorCode

# code, field, message; and for a code that rests on a catalog fact, what it rests on: kind= (the
# media kind), facts= (codes.CODE_FACTS, see verdicts.py)
Add = Callable[..., None]

# One use of a media object in an example: (kind, uri, field, seconds or None when the line does
# not give the duration, media resolution short name, mime type).
MediaUse = tuple[str, str, str, float | None, str, str]


def split_gs_uri(uri: str) -> tuple[str, str] | None:
    """("bucket", "object") of gs://bucket/object, or None when it is not one."""
    if not uri.startswith("gs://"):
        return None
    bucket, _, name = uri[5:].partition("/")
    if not bucket or not name or any(c.isspace() for c in bucket):
        return None
    return bucket, name


class MediaRules:
    def __init__(
        self, catalog: Catalog, model: ModelSpec, allowed_buckets: Collection[str]
    ) -> None:
        self._catalog = catalog
        self._model = model
        self._allowed = frozenset(allowed_buckets)
        self.accepted = catalog.accepted_mime_types(model)

    def check_file_data(
        self,
        value: object,
        field: str,
        add: Add,
        refs: list[MediaUse],
        resolution: str = "default",
    ) -> None:
        """Check one fileData value; append (kind, uri, field, seconds, resolution, mime type)
        for media that passed (seconds None: the duration is not known from the line)."""
        if self._model.text_only:
            add(
                ErrorCode.UNSUPPORTED_MODALITY,
                field,
                f"{self._model.name} tunes on text only; this part references media",
            )
            return
        if not isinstance(value, dict):
            add(
                ErrorCode.INVALID_PART, field, f"fileData must be an object, got {type_name(value)}"
            )
            return
        mime = value.get("mimeType", value.get("mime_type"))
        uri = value.get("fileUri", value.get("file_uri"))
        for key in value:
            if key not in _FILE_DATA_KEYS:
                add(ErrorCode.UNKNOWN_FIELD, f"{field}.{key}", f"fileData has no field {key!r}")
        kind = None
        if not isinstance(mime, str):
            add(
                ErrorCode.UNSUPPORTED_MIME_TYPE,
                f"{field}.mimeType",
                f"fileData.mimeType is missing or not a string ({type_name(mime)})",
                facts=(),
            )
        else:
            kind = self._catalog.media_kind_of(mime)
            if kind is None or kind.name not in self._model.modalities:
                add(
                    ErrorCode.UNSUPPORTED_MIME_TYPE,
                    f"{field}.mimeType",
                    f"{mime!r} is not a type {self._model.name} tunes on; accepted: {', '.join(self.accepted)}",
                    **self._mime_rests_on(mime, kind),
                )
                kind = None
        if not isinstance(uri, str) or not (split_gs_uri(uri) or _is_web_url(uri)):
            shown = repr(uri) if isinstance(uri, str) else f"a {type_name(uri)}"
            add(
                ErrorCode.INVALID_FILE_URI,
                f"{field}.fileUri",
                f"fileUri must be gs://BUCKET/OBJECT or a public http(s):// URL, got {shown}",
            )
            return
        gs = split_gs_uri(uri)
        if gs is not None and self._allowed and gs[0] not in self._allowed:
            add(
                ErrorCode.FILE_URI_NOT_ALLOWED,
                f"{field}.fileUri",
                f"{uri} is in bucket {gs[0]!r}, outside the allowed buckets ({', '.join(sorted(self._allowed))})",
            )
            return
        if kind is not None and isinstance(mime, str):  # a kind is only found for a str type
            refs.append(
                (kind.name, uri, f"{field}.fileUri", None, resolution, mime.strip().lower())
            )

    def _mime_rests_on(self, mime: str, kind: MediaKind | None) -> dict:
        """What refusing this type rests on: the model's modalities for a kind it does not tune on;
        for a type on no kind's list, the list of the kind its top-level type names (video/avi: the
        video list), or no catalog fact when it names none."""
        if kind is not None:
            return {"facts": ("model.modalities",)}
        top = mime.strip().lower().partition("/")[0]
        named = {"application": "document"}.get(top, top)
        if named in self._catalog.media and named in self._model.modalities:
            return {"kind": named, "facts": ("media.mime_types",)}
        return {"facts": ()}

    def check_counts(self, refs: list[MediaUse], add: Add) -> tuple[int, bool, bool]:
        """Per-example limits by kind, and the length of media whose duration is known.
        Returns the media's tokens, whether that is a lower bound (audio or video of unknown
        duration, counted as 0 seconds; a PDF, counted as one page), and whether Vertex AI
        drops the example (a video over its maximum length)."""
        counts: dict[str, int] = {}
        tokens = 0
        lower_bound = dropped = False
        for kind_name, _uri, field, seconds, resolution, _ in refs:
            counts[kind_name] = counts.get(kind_name, 0) + 1
            kind = self._catalog.media[kind_name]
            tokens += kind.tokens_each
            if kind_name == "document":
                lower_bound = True  # tokens_each is one page; the page count is not known offline
            if not kind.tokens_per_second:
                continue
            if seconds is None:
                lower_bound = True
                continue
            rate = (
                kind.tokens_per_second_low
                if resolution == "low" and kind.tokens_per_second_low
                else kind.tokens_per_second
            )
            tokens += int(-(-seconds * rate // 1))
            if self.too_long(kind_name, seconds, resolution, field, "clip", add):
                dropped = True
        for kind_name, n in counts.items():
            kind = self._catalog.media[kind_name]
            if n > kind.max_per_example:
                add(
                    ErrorCode.TOO_MANY_MEDIA,
                    None,
                    f"{n} {kind_name} parts in one example; at most {kind.max_per_example} allowed",
                    kind=kind_name,
                )
        return tokens, lower_bound, dropped

    def too_long(
        self, kind_name: str, seconds: float, resolution: str, field: str, what: str, add: Add
    ) -> bool:
        """Report media_too_long; True when Vertex AI drops the example for it (a kind with a
        documented drop rule: video)."""
        kind = self._catalog.media[kind_name]
        limit = kind.max_seconds_by_resolution.get(resolution, kind.max_seconds)
        if limit is None or seconds <= limit:
            return False
        drops = kind.max_dropped_fraction is not None
        at = (
            f"at {resolution} media resolution "
            if resolution in kind.max_seconds_by_resolution
            else ""
        )
        add(
            ErrorCode.MEDIA_TOO_LONG,
            field,
            f"this {kind_name} {what} is {seconds:g} s; {at}a {kind_name} may be at most {limit:,} s"
            + ("; Vertex AI drops this example (not billed, not trained on)" if drops else ""),
            kind=kind_name,
        )
        return drops

    def max_dropped_fraction(self, kind_name: str) -> float | None:
        kind = self._catalog.media.get(kind_name)
        return None if kind is None else kind.max_dropped_fraction

    def max_bytes(self, kind_name: str) -> int:
        return self._catalog.media[kind_name].max_bytes


def _is_web_url(uri: str) -> bool:
    # The tuning pages allow "a publicly available HTTP or HTTPS URL".
    for scheme in ("https://", "http://"):
        if uri[: len(scheme)].lower() == scheme:
            host = uri[len(scheme) :].split("/", 1)[0]
            return bool(host) and not any(c.isspace() for c in uri)
    return False


_FILE_DATA_KEYS = frozenset(
    {"mimeType", "mime_type", "fileUri", "file_uri", "displayName", "display_name"}
)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
