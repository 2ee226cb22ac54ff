"""What each error code means: its severity, its scope (file, line or settings), what it
means, and a minimal example. It is the long per-code table, kept apart from the ErrorCode enum
and its lookups in autotune.validation.codes; docs/error-codes.md documents the same list (a test
keeps the two in step)."""

from __future__ import annotations

from autotune.validation.codes import ErrorCode, Scope, Severity

_OK = '{"contents": [{"role": "user", "parts": [{"text": "Hi"}]}, {"role": "model", "parts": [{"text": "Hello"}]}]}'

# code -> (severity, scope, meaning, minimal example: a line, or a file/settings description)
CODE_INFO: dict[ErrorCode, tuple[Severity, Scope, str, str]] = {
    ErrorCode.EMPTY_FILE: (
        "error",
        "file",
        "The file has no bytes, or no line holding an example.",
        "(a 0-byte file)",
    ),
    ErrorCode.FILE_TOO_LARGE: (
        "error",
        "file",
        "The file is larger than the model accepts (1 GB of JSONL).",
        "(a 1.2 GB training file)",
    ),
    ErrorCode.TOO_FEW_EXAMPLES: (
        "error",
        "file",
        "The training file has fewer examples than the model's documented minimum (16 for the 1.x "
        "models; the current pages give no minimum, so for current models this is never reported).",
        "(a training file of 10 valid lines for gemini-1.5-flash-002)",
    ),
    ErrorCode.FEW_EXAMPLES: (
        "warning",
        "file",
        "The training file has fewer than the recommended 100 examples.",
        "(a training file of 40 valid lines)",
    ),
    ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES: (
        "error",
        "file",
        "More training examples with media than the model documents as its multimodal maximum "
        "(300,000 for the current models; text-only examples have their own, larger maximum: too_many_examples).",
        "(310,000 training examples that each reference an image)",
    ),
    ErrorCode.TOO_MANY_EXAMPLES: (
        "error",
        "file",
        "The training file has more examples than the model documents as its maximum (10 million "
        "text-only examples for the current models).",
        "(10,000,001 training examples for gemini-3.5-flash)",
    ),
    ErrorCode.VALIDATION_TOO_MANY_EXAMPLES: (
        "error",
        "file",
        "The validation file has more examples than the model accepts (256 for 1.x models, "
        "5,000 for current ones).",
        "(a validation file of 300 lines for gemini-1.5-flash-002)",
    ),
    ErrorCode.VALIDATION_OVER_TRAINING_FRACTION: (
        "error",
        "file",
        "More than 1,000 validation examples and more than 30% of the number of training examples "
        "(the current models' rule: at most 5,000, or 30% of the training examples when there are more than 1,000).",
        "(1,500 validation examples next to 4,000 training examples for gemini-3.5-flash)",
    ),
    ErrorCode.MIXED_MEDIA_RESOLUTIONS: (
        "error",
        "file",
        "Examples of one file set different media resolutions, which the model does not accept "
        "(the Gemini 2.5 line).",
        '(line 1: {"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}, ...}, '
        'line 2: {"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HIGH"}, ...} for gemini-2.5-flash)',
    ),
    ErrorCode.TOO_MANY_DROPPED_EXAMPLES: (
        "error",
        "file",
        "More than 10% of the file's examples hold a video longer than the maximum at their media "
        "resolution (media_too_long): Vertex AI drops those examples and, past 10% of the dataset, fails the job before "
        "training.",
        "(20 examples, 3 of them with a 6-minute video at MEDIA_RESOLUTION_MEDIUM)",
    ),
    ErrorCode.MIXED_FORMATS: (
        "error",
        "file",
        "Some lines use the Gemini `contents` format and others the legacy `messages` format.",
        '(line 1: {"contents": [...]}, line 2: {"messages": [...]})',
    ),
    ErrorCode.CRLF_LINE_ENDINGS: (
        "warning",
        "file",
        "Lines end with \\r\\n. JSON parsers treat \\r as whitespace, so the data is read the "
        "same; reported once per file so Windows line endings are a known, harmless fact.",
        _OK + "\\r\\n",
    ),
    ErrorCode.INVALID_UTF8: (
        "error",
        "line",
        "The line is not valid UTF-8 text.",
        '{"contents": "caf\\xe9"}  (a Latin-1 byte)',
    ),
    ErrorCode.BYTE_ORDER_MARK: (
        "error",
        "line",
        "The file starts with a UTF-8 byte order mark (EF BB BF). JSON forbids it and Vertex AI "
        "reads each line strictly as JSON, so line 1 would be rejected; save the file as UTF-8 without BOM.",
        "\\xef\\xbb\\xbf" + _OK,
    ),
    ErrorCode.BLANK_LINE: (
        "error",
        "line",
        "An empty (or whitespace-only) line in the middle of the file. Each line must be one "
        "example; an empty line is not JSON, and we do not rely on Vertex AI skipping it. A single newline at the "
        "end of the file is fine.",
        "(an empty line between two examples)",
    ),
    ErrorCode.LINE_TOO_LONG: (
        "error",
        "line",
        "The line is longer than any valid example can be (8 MiB); it is skipped without being "
        "held in memory.",
        "(one 300 MB line with no newline)",
    ),
    ErrorCode.INVALID_JSON: (
        "error",
        "line",
        "The line is not valid JSON (including JSON nested too deeply to read).",
        '{"contents": [{"role": "user",',
    ),
    ErrorCode.NOT_AN_OBJECT: (
        "error",
        "line",
        "A line, turn, part or message that must be a JSON object is something else.",
        '["Hi", "Hello"]',
    ),
    ErrorCode.UNKNOWN_FIELD: (
        "warning",
        "line",
        "A field the format does not define; Vertex AI may reject or ignore it.",
        '{"contents": [...], "label": "spam"}',
    ),
    ErrorCode.MISSING_CONTENTS: (
        "error",
        "line",
        "The example has no conversation: no `contents` list (Gemini format), or no `messages` "
        "list (legacy format), or the line uses the other format than the model takes.",
        '{"systemInstruction": {"parts": [{"text": "Be brief."}]}}',
    ),
    ErrorCode.EMPTY_CONTENTS: (
        "error",
        "line",
        "`contents` (or `messages`) is an empty list.",
        '{"contents": []}',
    ),
    ErrorCode.INVALID_ROLE: (
        "error",
        "line",
        "A turn's role is not one the format allows: `user`, `model`, or none (a Gemini turn with "
        "no role is a user turn); legacy: `system`, `user`, `model`, always set.",
        '{"contents": [{"role": "assistant", "parts": [{"text": "Hi"}]}]}',
    ),
    ErrorCode.ROLES_NOT_ALTERNATING: (
        "error",
        "line",
        "Two consecutive turns have the same role; user and model turns must alternate.",
        '{"contents": [{"role": "user", ...}, {"role": "user", ...}, {"role": "model", ...}]}',
    ),
    ErrorCode.FIRST_TURN_NOT_USER: (
        "error",
        "line",
        "The conversation starts with a model turn.",
        '{"contents": [{"role": "model", "parts": [{"text": "Hello"}]}]}',
    ),
    ErrorCode.LAST_TURN_NOT_MODEL: (
        "error",
        "line",
        "The conversation ends with a user turn, so there is nothing to learn from.",
        '{"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}',
    ),
    ErrorCode.MISSING_PARTS: (
        "error",
        "line",
        "A turn has no `parts` list (legacy: a message has no `content` string).",
        '{"contents": [{"role": "user", "text": "Hi"}, ...]}',
    ),
    ErrorCode.EMPTY_PARTS: (
        "error",
        "line",
        "A turn's `parts` list is empty.",
        '{"contents": [{"role": "user", "parts": []}, ...]}',
    ),
    ErrorCode.INVALID_PART: (
        "error",
        "line",
        "A part has no data (`text`, `fileData`, `functionCall`, `functionResponse`) or more than "
        "one, or a data field of the wrong type.",
        '{"contents": [{"role": "user", "parts": [{"txt": "Hi"}]}, ...]}',
    ),
    ErrorCode.EMPTY_TEXT: (
        "error",
        "line",
        "A text part (or legacy message content) is empty or only whitespace.",
        '{"contents": [{"role": "user", "parts": [{"text": "  "}]}, ...]}',
    ),
    ErrorCode.SYSTEM_NOT_FIRST: (
        "error",
        "line",
        "Legacy format: a `system` message that is not the first message.",
        '{"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."}, ...]}',
    ),
    ErrorCode.INVALID_TOOLS: (
        "error",
        "line",
        "`tools` is not a list of tool objects, or a function declaration has no name.",
        '{"contents": [...], "tools": [{"functionDeclarations": [{"description": "no name"}]}]}',
    ),
    ErrorCode.FUNCTION_PART_WRONG_ROLE: (
        "error",
        "line",
        "A functionCall outside a model turn, or a functionResponse in a model turn (it belongs in a "
        "user turn or a turn with no role).",
        '{"contents": [{"role": "user", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}, ...]}',
    ),
    ErrorCode.FUNCTION_CALLING_UNSUPPORTED: (
        "error",
        "line",
        "Function-call parts for a model that does not tune on them (the Gemini 2.5 line: Vertex AI "
        'refuses the job with "unsupported modality [function call]").',
        '{... {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]} ...}  (gemini-2.5-flash)',
    ),
    ErrorCode.INLINE_DATA_UNSUPPORTED: (
        "error",
        "line",
        "A part carries `inlineData`; tuning data must reference media with `fileData`.",
        '{"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBOR..."}}]}, ...]}',
    ),
    ErrorCode.UNSUPPORTED_MODALITY: (
        "error",
        "line",
        "The example has media but the model tunes on text only (gemini-1.0-pro-002).",
        '{"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}]}, ...]}',
    ),
    ErrorCode.UNSUPPORTED_MIME_TYPE: (
        "error",
        "line",
        "A `fileData` mimeType the model does not accept (not on the catalog's lists, a typo, or a "
        "kind the model does not tune on).",
        '{... {"fileData": {"mimeType": "image/gif", "fileUri": "gs://b/cat.gif"}} ...}',
    ),
    ErrorCode.INVALID_FILE_URI: (
        "error",
        "line",
        "A `fileUri` that is not gs://BUCKET/OBJECT or a public http:// or https:// URL.",
        '{... {"fileData": {"mimeType": "image/png", "fileUri": "/home/me/cat.png"}} ...}',
    ),
    ErrorCode.FILE_URI_NOT_ALLOWED: (
        "error",
        "line",
        "A gs:// object outside the allowed buckets (default: the dataset's own bucket). Otherwise "
        "an uploader could make the tuning service read buckets the uploader cannot.",
        '{... {"fileData": {"mimeType": "image/png", "fileUri": "gs://someone-else/cat.png"}} ...}',
    ),
    ErrorCode.FILE_NOT_FOUND: (
        "error",
        "line",
        "A referenced gs:// object does not exist (checked with --check-files, and always in the "
        "validate function).",
        '{... {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/missing.png"}} ...}',
    ),
    ErrorCode.MEDIA_TOO_LARGE: (
        "error",
        "line",
        "A referenced object is larger than its kind allows (image 20 MB, audio 100 MB, video 100 MB, "
        "PDF 20 MB).",
        '{... {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/huge.png"}} ...}  (a 25 MB PNG)',
    ),
    ErrorCode.TOO_MANY_MEDIA: (
        "error",
        "line",
        "More media in one example than allowed (30 images, 1 audio file, 1 video, 4 PDFs).",
        "(an example with 2 audio parts)",
    ),
    ErrorCode.MEDIA_OUTSIDE_USER_TURN: (
        "error",
        "line",
        "A `fileData` part in a model turn. Media belong in user turns: a tuned model answers with text.",
        '{"contents": [{"role": "user", ...}, {"role": "model", "parts": [{"fileData": {"mimeType": "image/png", '
        '"fileUri": "gs://b/cat.png"}}]}]}',
    ),
    ErrorCode.INVALID_VIDEO_METADATA: (
        "error",
        "line",
        "`videoMetadata` on a part that is not a video, an offset that is not a duration such as "
        '"5s" or "1.5s", or a startOffset not before the endOffset.',
        '{... {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/a.mp4"}, '
        '"videoMetadata": {"startOffset": "10s", "endOffset": "5s"}} ...}',
    ),
    ErrorCode.INVALID_MEDIA_RESOLUTION: (
        "error",
        "line",
        "A media resolution (generationConfig.mediaResolution, or a part's mediaResolution) that is not "
        "one of MEDIA_RESOLUTION_UNSPECIFIED, _LOW, _MEDIUM, _HIGH, _ULTRA_HIGH.",
        '{"contents": [...], "generationConfig": {"mediaResolution": "LOW"}}',
    ),
    ErrorCode.MEDIA_TOO_LONG: (
        "warning",
        "line",
        "A video longer than the maximum at the example's media resolution (5 minutes at MEDIUM or "
        "HIGH, 20 minutes at LOW), its length known from videoMetadata offsets or, with --check-files, from the file's "
        "header: Vertex AI drops the example (not billed, not trained on). Also an audio clip over 60 minutes (a limit "
        "the current pages no longer show, so a warning only).",
        '{"contents": [... {"fileData": {"mimeType": "video/mp4", ...}, "videoMetadata": {"endOffset": "400s"}} ...], '
        '"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"}}',
    ),
    ErrorCode.VIDEO_DURATION_UNREADABLE: (
        "warning",
        "line",
        "With --check-files: a referenced MP4, QuickTime, 3GPP or WebM video whose header does not "
        "give its length (truncated, corrupt, or not the container its type says). Its length, and so its tokens and the "
        "length limit, stay unchecked.",
        '{... {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/half-uploaded.mp4"}} ...}  '
        "(an object cut off before its moov box)",
    ),
    ErrorCode.TOKEN_LIMIT_EXCEEDED: (
        "error",
        "line",
        "Even a conservative lower bound of the example's tokens exceeds the model's limit "
        "(32,000 for 1.x models, 131,072 for current ones).",
        "(an example with 400,000 characters of text, 1.x model)",
    ),
    ErrorCode.TOKEN_LIMIT_RISK: (
        "warning",
        "line",
        "The estimated tokens are near or over the limit but the lower bound is not: the "
        "service may truncate or drop the example.",
        "(an example with 120,000 characters of text, 1.x model)",
    ),
    ErrorCode.DUPLICATE_EXAMPLE: (
        "warning",
        "line",
        "The line repeats an earlier example of the same file byte for byte (a trailing \\r aside).",
        _OK + "  (twice)",
    ),
    ErrorCode.UNSUPPORTED_MODEL: (
        "error",
        "settings",
        "The model is not in the catalog (`autotune models`).",
        "autotune-model: gemini-9-ultra",
    ),
    ErrorCode.MODEL_RETIRED: (
        "error",
        "settings",
        "The catalog lists the model as retired: Vertex AI refuses the job. The rest of the report is "
        "still produced, so it shows what else a current model would need.",
        "autotune-model: gemini-1.5-flash-002",
    ),
    ErrorCode.INVALID_ADAPTER_SIZE: (
        "error",
        "settings",
        "An adapter size the model does not accept (1.5 Pro: 1 or 4; 1.5 Flash: 1, 4, 8, 16).",
        "autotune-adapter-size: 16 with gemini-1.5-pro-002",
    ),
    ErrorCode.INVALID_EPOCHS: (
        "error",
        "settings",
        "Epochs is not a whole number from 1 to 100.",
        "autotune-epochs: zero",
    ),
    ErrorCode.INVALID_LEARNING_RATE_MULTIPLIER: (
        "error",
        "settings",
        "The learning-rate multiplier is not a number greater than 0 and at most 10.",
        "autotune-learning-rate-multiplier: -1",
    ),
    ErrorCode.UNSUPPORTED_REGION: (
        "error",
        "settings",
        "The model cannot be tuned in that region.",
        "autotune-region: us-west1 with gemini-3.5-flash",
    ),
}

assert set(CODE_INFO) == set(ErrorCode), "every code needs its documentation"
