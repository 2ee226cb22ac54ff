"""Every problem the validator can report: one stable code each (ErrorCode), and the catalog
facts a code's limit rests on (CODE_FACTS). Each code's severity, scope, meaning and minimal
example live in autotune.validation.code_info; docs/error-codes.md documents the same list (a
test keeps the two in step)."""

from __future__ import annotations

import enum
from typing import Literal

Severity = Literal["error", "warning"]
Scope = Literal["file", "line", "settings"]


class ErrorCode(enum.StrEnum):
    # file
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    TOO_FEW_EXAMPLES = "too_few_examples"
    FEW_EXAMPLES = "few_examples"
    TOO_MANY_EXAMPLES = "too_many_examples"
    TOO_MANY_MULTIMODAL_EXAMPLES = "too_many_multimodal_examples"
    VALIDATION_TOO_MANY_EXAMPLES = "validation_too_many_examples"
    VALIDATION_OVER_TRAINING_FRACTION = "validation_over_training_fraction"
    MIXED_MEDIA_RESOLUTIONS = "mixed_media_resolutions"
    TOO_MANY_DROPPED_EXAMPLES = "too_many_dropped_examples"
    MIXED_FORMATS = "mixed_formats"
    CRLF_LINE_ENDINGS = "crlf_line_endings"
    # line: bytes and JSON
    INVALID_UTF8 = "invalid_utf8"
    BYTE_ORDER_MARK = "byte_order_mark"
    BLANK_LINE = "blank_line"
    LINE_TOO_LONG = "line_too_long"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_FIELD = "unknown_field"
    # line: conversation shape
    MISSING_CONTENTS = "missing_contents"
    EMPTY_CONTENTS = "empty_contents"
    INVALID_ROLE = "invalid_role"
    ROLES_NOT_ALTERNATING = "roles_not_alternating"
    FIRST_TURN_NOT_USER = "first_turn_not_user"
    LAST_TURN_NOT_MODEL = "last_turn_not_model"
    MISSING_PARTS = "missing_parts"
    EMPTY_PARTS = "empty_parts"
    INVALID_PART = "invalid_part"
    EMPTY_TEXT = "empty_text"
    SYSTEM_NOT_FIRST = "system_not_first"
    INVALID_TOOLS = "invalid_tools"
    FUNCTION_PART_WRONG_ROLE = "function_part_wrong_role"
    FUNCTION_CALLING_UNSUPPORTED = "function_calling_unsupported"
    # line: media
    INLINE_DATA_UNSUPPORTED = "inline_data_unsupported"
    UNSUPPORTED_MODALITY = "unsupported_modality"
    UNSUPPORTED_MIME_TYPE = "unsupported_mime_type"
    INVALID_FILE_URI = "invalid_file_uri"
    FILE_URI_NOT_ALLOWED = "file_uri_not_allowed"
    FILE_NOT_FOUND = "file_not_found"
    MEDIA_TOO_LARGE = "media_too_large"
    TOO_MANY_MEDIA = "too_many_media"
    MEDIA_OUTSIDE_USER_TURN = "media_outside_user_turn"
    INVALID_VIDEO_METADATA = "invalid_video_metadata"
    INVALID_MEDIA_RESOLUTION = "invalid_media_resolution"
    MEDIA_TOO_LONG = "media_too_long"
    VIDEO_DURATION_UNREADABLE = "video_duration_unreadable"
    # line: size
    TOKEN_LIMIT_EXCEEDED = "token_limit_exceeded"
    TOKEN_LIMIT_RISK = "token_limit_risk"
    DUPLICATE_EXAMPLE = "duplicate_example"
    # settings
    UNSUPPORTED_MODEL = "unsupported_model"
    MODEL_RETIRED = "model_retired"
    INVALID_ADAPTER_SIZE = "invalid_adapter_size"
    INVALID_EPOCHS = "invalid_epochs"
    INVALID_LEARNING_RATE_MULTIPLIER = "invalid_learning_rate_multiplier"
    UNSUPPORTED_REGION = "unsupported_region"

    @property
    def severity(self) -> Severity:
        return _info(self)[0]

    @property
    def scope(self) -> Scope:
        return _info(self)[1]

    @property
    def meaning(self) -> str:
        return _info(self)[2]

    @property
    def example(self) -> str:
        return _info(self)[3]


# The catalog facts a code's limit rests on: "model.FACT" (of the model tuned) or "media.FACT"
# (of the media kind at hand). Such a code refuses a dataset only while every fact it rests on is
# confirmed in the catalog; otherwise it is reported as a warning that says so (verdicts.py). A
# finding may name the one fact it rests on where a code declares several (too_many_examples).
CODE_FACTS: dict[ErrorCode, tuple[str, ...]] = {
    ErrorCode.FILE_TOO_LARGE: ("model.max_file_bytes",),
    ErrorCode.TOO_FEW_EXAMPLES: ("model.min_training_examples",),
    ErrorCode.TOO_MANY_EXAMPLES: (
        "model.max_training_examples",
        "model.max_training_examples_text_only",
    ),
    ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES: ("model.max_training_examples_multimodal",),
    ErrorCode.VALIDATION_TOO_MANY_EXAMPLES: ("model.max_validation_examples",),
    ErrorCode.VALIDATION_OVER_TRAINING_FRACTION: (
        "model.validation_fraction",
        "model.validation_fraction_over",
    ),
    ErrorCode.MIXED_MEDIA_RESOLUTIONS: ("model.mixed_media_resolution",),
    ErrorCode.TOO_MANY_DROPPED_EXAMPLES: (
        "media.max_dropped_fraction",
        "media.max_seconds_by_resolution",
    ),
    ErrorCode.FUNCTION_CALLING_UNSUPPORTED: ("model.function_calling",),
    ErrorCode.UNSUPPORTED_MODALITY: ("model.modalities",),
    ErrorCode.UNSUPPORTED_MIME_TYPE: ("model.modalities", "media.mime_types"),
    ErrorCode.MEDIA_TOO_LARGE: ("media.max_bytes",),
    ErrorCode.TOO_MANY_MEDIA: ("media.max_per_example",),
    ErrorCode.MEDIA_TOO_LONG: ("media.max_seconds", "media.max_seconds_by_resolution"),
    ErrorCode.TOKEN_LIMIT_EXCEEDED: ("model.max_tokens_per_example",),
    ErrorCode.TOKEN_LIMIT_RISK: ("model.max_tokens_per_example",),
    ErrorCode.MODEL_RETIRED: ("model.lifecycle",),
    ErrorCode.INVALID_ADAPTER_SIZE: ("model.adapter_sizes",),
    ErrorCode.UNSUPPORTED_REGION: ("model.regions",),
}


def _info(code: ErrorCode) -> tuple[Severity, Scope, str, str]:
    # Imported here, not at the top: code_info keys its table by ErrorCode, so it imports this
    # module, and either may be imported first.
    from autotune.validation.code_info import CODE_INFO

    return CODE_INFO[code]
