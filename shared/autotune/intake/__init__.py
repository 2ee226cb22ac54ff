"""The intake stage: what happens when an object lands in the bucket (the validate function's core).

Which objects are datasets (only under the incoming prefix):
- `NAME.jsonl` is a dataset by itself: its own training file, settings from its metadata;
- `NAME.tuning.json` is a manifest naming the training (and validation) objects and settings;
- a `.jsonl` inside a `parts/` folder (e.g. `incoming/support/parts/train.jsonl`) is left to the
  manifest or `autotune-validation` reference that names it, so it is never tuned on its own;
- anything else (reports, tuned outputs, folders, other files) is ignored.

A manifest, at most 64 KiB of JSON:
    {"training": "incoming/support/parts/train.jsonl",           required
     "validation": "incoming/support/parts/validation.jsonl",     optional
     "settings": {"model": "gemini-3.5-flash", "epochs": 4}}      optional: TuningSettings fields
Object names are in the manifest's bucket (a `gs://` URI of that bucket is accepted too).

Settings, later layers winning: deployment defaults, the manifest's settings, the triggering
object's metadata (`autotune-model`, ...). The report of one upload goes to
`<reports prefix><uploaded object>/<generation>.json`. The dataset an event speaks of is the
training file (a manifest's events carry the training file's URI and generation), except when a
manifest cannot be used at all: then the manifest itself.

Uploads whose messages were lost are taken in again by the same code (autotune.intake.reconciliation).
"""
