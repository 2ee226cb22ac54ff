"""Problems the intake finds beside the validator, reported in the validator's report shape, and
the media inspector that refuses the pipeline's own objects as media."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from autotune.config import PipelineConfig
from autotune.intake.objects import DATASET_SUFFIX, MANIFEST_SUFFIX
from autotune.settings import TuningSettings

# Problems found before any line is read, reported in the validator's report shape:
# the manifest is not JSON of the documented shape, or names an object of another bucket;
INVALID_MANIFEST = "invalid_manifest"
# a file the manifest or the autotune-validation metadata names does not exist in the bucket;
OBJECT_NOT_FOUND = "object_not_found"
# a dataset stored with a Content-Encoding (gzip, ...): what a reader gets is not what is stored,
# and its size says nothing of the decompressed size, so limits and checksums would not hold;
CONTENT_ENCODED = "content_encoded"
# text a manifest or the autotune-* metadata carries that no record, event or report can hold:
# a lone surrogate (\ud800 is valid JSON, not encodable UTF-8), a control character, or more
# than TEXT_LIMIT_CHARS characters.
UNUSABLE_TEXT = "unusable_text"
# the autotune-validation-split metadata is not a fraction in [0, 1), or asks for a split of an
# upload that already names its validation file (autotune-validation);
INVALID_VALIDATION_SPLIT = "invalid_validation_split"
# an example's fileData names one of the pipeline's own objects (a report, a pinned copy, a
# manifest or a dataset under the incoming prefix): media, not training data or verdicts.
MEDIA_IS_PIPELINE_OBJECT = "media_is_pipeline_object"

if TYPE_CHECKING:
    from autotune.validation import MediaInspector


def intake_report(
    settings: TuningSettings, code: str, message: str, *, field: str | None = None
) -> dict:
    """A rejection report, shaped like the validator's, for a problem found before reading lines."""
    return {
        "valid": False,
        "model": str(settings.model),
        "files": {},
        "errors": [
            {
                "file": None,
                "role": None,
                "line": None,
                "code": code,
                "severity": "error",
                "field": field,
                "message": message,
            }
        ],
        "counts": {code: 1},
        "totals": {"errors": 1, "warnings": 0},
        "stats": {},
        "cost_estimate": {},
    }


class OwnObjectsRefused:
    """The media inspector, except that the pipeline's own objects are not media: they are
    answered as missing to the validator, and the report then names them for what they are."""

    def __init__(self, inner: MediaInspector, config: PipelineConfig) -> None:
        self.inner, self.config = inner, config
        self.refused: set[str] = set()

    def is_own(self, uri: str) -> bool:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if not uri.startswith("gs://") or bucket != self.config.bucket:
            return False
        if name.startswith(self.config.reports_prefix):
            return True
        return name.startswith(self.config.incoming_prefix) and name.endswith(
            (DATASET_SUFFIX, MANIFEST_SUFFIX)
        )

    def stat(self, uris: Collection[str]) -> dict[str, int | None]:
        uris = list(uris)
        own = {uri for uri in uris if self.is_own(uri)}
        self.refused |= own
        sizes = dict(self.inner.stat([uri for uri in uris if uri not in own]))
        sizes.update(dict.fromkeys(own))
        return sizes

    def rewritten(self, doc: dict) -> dict:
        """The validator's report with the refused URIs' "does not exist" told as what they are."""
        moved = 0
        for issue in doc.get("errors", []):
            uri = next(
                (
                    u
                    for u in self.refused
                    if str(issue.get("message", "")).startswith(f"{u} does not exist")
                ),
                None,
            )
            if uri is not None and issue.get("code") == "file_not_found":
                moved += 1
                issue["code"] = MEDIA_IS_PIPELINE_OBJECT
                issue["message"] = (
                    f"{uri} is one of the pipeline's own objects (a report, a pinned copy, a manifest or a "
                    "dataset), not media an example may reference"
                )
        counts = dict(doc.get("counts") or {})
        if moved:
            left = counts.get("file_not_found", 0) - moved
            counts = {code: n for code, n in counts.items() if code != "file_not_found"}
            if left > 0:
                counts["file_not_found"] = left
            counts[MEDIA_IS_PIPELINE_OBJECT] = moved
        doc["counts"] = counts
        doc["valid"] = False
        return doc
