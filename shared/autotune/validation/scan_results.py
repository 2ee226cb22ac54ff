"""What one file's scan hands on: its summary and counts (FileScan) and the gs:// objects its
examples name (MediaRef, MediaRefs), which autotune.validation.dataset checks once for the whole
dataset. Kept apart from the scanning loop in autotune.validation.scan so the dataset-wide checks
read these types without it."""

from __future__ import annotations

from autotune.validation.report import FileRole, FileSummary
from autotune.validation.tokens import TokenHistogram

# Where a media object is named: (file, line, field, seconds known from the line or None,
# media resolution).
MediaPlace = tuple[FileRole, int, str, float | None, str]


class MediaRef:
    """One gs:// object the examples name: where it is named (the first `places_cap` places,
    so a missing object can be reported on each line that needs it) and how often."""

    __slots__ = ("kind", "mime", "places", "count")

    def __init__(self, kind: str, mime: str, place: MediaPlace) -> None:
        self.kind, self.mime, self.places, self.count = kind, mime, [place], 1


class MediaRefs(dict[str, MediaRef]):
    """gs:// URI -> MediaRef, with a bound on the places kept beyond each object's first."""

    def __init__(self) -> None:
        super().__init__()
        self.extra_places = 0


class FileScan:
    """What one file's scan hands to the dataset-wide checks and the report."""

    def __init__(
        self,
        summary: FileSummary,
        tokens: TokenHistogram,
        duplicates: int,
        lower_bound: int = 0,
        dropped: int = 0,
    ) -> None:
        self.summary = summary
        self.tokens = tokens
        self.duplicates = duplicates
        self.lower_bound = (
            lower_bound  # examples whose token count is a lower bound (media of unknown length)
        )
        self.dropped = dropped  # examples Vertex AI drops (a video over its maximum length)
