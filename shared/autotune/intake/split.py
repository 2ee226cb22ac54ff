"""The validation split of a training file uploaded alone: how much, where the halves go, and
the halves themselves (the split `autotune prepare` makes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autotune.intake.objects import DATASET_SUFFIX, PARTS_FOLDER

if TYPE_CHECKING:
    from autotune.preparation import SplitPlan

# The split holds the whole training file and its two halves in memory: bounded well under the
# validate function's 512 MiB, so a large file is refused with a way forward instead of a crash.
SPLIT_MAX_BYTES = 64 * 1024 * 1024

# A training file uploaded alone may ask for a validation split (or the deployment's
# validation_split default does): the two halves are written under PARTS_FOLDER beside the upload,
# named by its generation, so a second delivery of the same upload finds the same files.
VALIDATION_SPLIT_METADATA = "autotune-validation-split"
SPLIT_TRAINING_FILE = "training.jsonl"
SPLIT_VALIDATION_FILE = "validation.jsonl"


class InvalidValidationSplit(ValueError):
    pass


def validation_split_fraction(metadata: Mapping[str, str], default: float, *, alone: bool) -> float:
    """The fraction of a training file to draw into a validation file (0: no split).
    `alone`: the upload is a training file with no validation file named."""
    text = metadata.get(VALIDATION_SPLIT_METADATA)
    if text is None:
        if not 0.0 <= default < 1.0:
            raise InvalidValidationSplit(
                f"the deployment's validation_split (deploy/config.toml, AUTOTUNE_VALIDATION_SPLIT) "
                f"is {default}; it must be a fraction from 0 (no split) up to, not including, 1"
            )
        return default if alone else 0.0
    try:
        fraction = float(text.strip())
    except ValueError:
        fraction = -1.0
    if not 0.0 <= fraction < 1.0:  # also refuses nan and inf
        raise InvalidValidationSplit(
            f"metadata {VALIDATION_SPLIT_METADATA} is {ascii(text[:64])}; give a fraction "
            "from 0 (no split) up to, not including, 1, e.g. 0.1"
        )
    if fraction and not alone:
        raise InvalidValidationSplit(
            f"metadata {VALIDATION_SPLIT_METADATA} splits a training file uploaded alone; this "
            "upload already names its validation file (or is a manifest): drop one of the two"
        )
    return fraction


def split_object_names(object_name: str, generation: str) -> tuple[str, str]:
    """Where the split of one upload generation goes: beside it, in a parts/ folder the intake ignores."""
    folder, _, base = object_name.rpartition("/")
    stem = base.removesuffix(DATASET_SUFFIX)
    where = (
        f"{folder}/{PARTS_FOLDER}/{stem}/{generation}/"
        if folder
        else f"{PARTS_FOLDER}/{stem}/{generation}/"
    )
    return where + SPLIT_TRAINING_FILE, where + SPLIT_VALIDATION_FILE


@dataclass(frozen=True)
class SplitFiles:
    training: bytes
    validation: bytes
    plan: SplitPlan


def split_dataset(
    data: bytes, fraction: float, *, max_validation_examples: int, model: str
) -> SplitFiles:
    """The lines of a JSONL file drawn into training and validation by their content, with the
    split `autotune prepare` makes: the same file always gives the same two files."""
    from autotune.preparation import content_hash, split_plan

    lines = [line.strip() for line in data.removeprefix(b"\xef\xbb\xbf").split(b"\n")]
    lines = [line for line in lines if line]
    hashes = [content_hash(line) for line in lines]
    plan = split_plan(
        hashes, fraction, max_validation_examples=max_validation_examples, model=model
    )
    training = b"".join(
        line + b"\n" for line, h in zip(lines, hashes, strict=True) if h >= plan.threshold
    )
    validation = b"".join(
        line + b"\n" for line, h in zip(lines, hashes, strict=True) if h < plan.threshold
    )
    return SplitFiles(training=training, validation=validation, plan=plan)
