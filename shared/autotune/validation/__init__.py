"""The dataset validator: the functional core shared by the validate function and
`autotune validate`. Takes bytes and plain values, returns a ValidationReport; imports
nothing from google.* (cold start)."""

from autotune.validation.code_info import CODE_INFO
from autotune.validation.codes import ErrorCode
from autotune.validation.dataset import (
    DatasetSource,
    MediaInspector,
    validate_dataset,
    validate_for_model,
)
from autotune.validation.lines import file_chunks
from autotune.validation.report import FileSummary, Issue, ValidationReport
from autotune.validation.scan import MAX_LINE_BYTES, MIN_EXAMPLES, RECOMMENDED_EXAMPLES

__all__ = [
    "CODE_INFO",
    "MAX_LINE_BYTES",
    "MIN_EXAMPLES",
    "RECOMMENDED_EXAMPLES",
    "DatasetSource",
    "ErrorCode",
    "FileSummary",
    "Issue",
    "MediaInspector",
    "ValidationReport",
    "file_chunks",
    "validate_dataset",
    "validate_for_model",
]
