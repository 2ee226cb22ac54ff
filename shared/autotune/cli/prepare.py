"""`autotune prepare`: OpenAI chat JSONL, prompt/response CSV or JSONL, or legacy `messages`
turned into the format of the chosen model, with an optional deterministic validation split.

The conversion and the split are autotune.preparation (pure); this command reads and writes the
files. Exit 0 when written, 1 when a line cannot be converted (named, with nothing written unless
--skip-unconvertible), 2 on a usage error (unknown model, unreadable input, an output that would
replace the input or an existing file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app

LISTED_PROBLEMS = 100


@app.command()
def prepare(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="A .jsonl (OpenAI chat, legacy messages, prompt/response, Gemini) or a .csv with prompt and response (or completion) columns, optional system.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="The model to prepare for (its format and limits; default: deploy/config.toml)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Training file to write (default: INPUT's name + .prepared.jsonl).",
        ),
    ] = None,
    validation_split: Annotated[
        float | None,
        typer.Option(
            help="Fraction of examples drawn into a validation file (0 < F < 1), by each example's content."
        ),
    ] = None,
    validation_output: Annotated[
        Path | None,
        typer.Option(
            help="Validation file to write (default: the training file's name with .validation.jsonl)."
        ),
    ] = None,
    skip_unconvertible: Annotated[
        bool,
        typer.Option(
            "--skip-unconvertible",
            help="Write the examples that convert, leaving out (and naming) those that do not.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace output files that exist.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was done as one JSON document.")
    ] = False,
) -> None:
    """Convert a dataset into the chosen model's format, reporting what changed; optionally split off validation examples."""
    from autotune.catalog import load_catalog
    from autotune.config import ConfigError, PipelineConfig
    from autotune.preparation import (
        Unconvertible,
        canonical_bytes,
        content_hash,
        convert_example,
        split_plan,
    )
    from autotune_local.checkout import config_file

    try:
        model_name = model or PipelineConfig.from_env(config_file=config_file()).defaults.model
    except ConfigError as exc:
        raise _usage(str(exc)) from None
    spec = load_catalog().get(model_name)
    if spec is None:
        raise _usage(f"unknown model {model_name!r}; `autotune models` lists them")
    if validation_split is not None and not 0.0 < validation_split < 1.0:
        raise _usage(
            f"--validation-split takes a fraction between 0 and 1 (exclusive), not {validation_split}"
        )
    stem = source.name[: -len(source.suffix)] if source.suffix else source.name
    output = output or source.with_name(f"{stem}.prepared.jsonl")
    if validation_split is not None:
        out_stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
        validation_output = validation_output or output.with_name(f"{out_stem}.validation.jsonl")
    targets = [
        p
        for p in (output, validation_output if validation_split is not None else None)
        if p is not None
    ]
    for target in targets:
        if not target.parent.is_dir():
            raise _usage(f"{target}: the folder {target.parent} does not exist")
        if target.resolve() == source.resolve():
            raise _usage(f"{target} is the input: write the prepared data to another file")
        if target.exists() and not overwrite:
            raise _usage(f"{target} exists; pass --overwrite to replace it")
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise _usage("the training and validation outputs are the same file")

    sources: dict[str, int] = {}
    changes: dict[str, int] = {}
    problems: list[dict] = []
    problem_count = 0
    hashes: list[int] = []
    staging = output.with_name(f".{output.name}.partial")
    try:
        with staging.open("wb") as staged:
            for where, item in _examples(source):
                try:
                    if isinstance(item, Unconvertible):
                        raise item
                    converted = convert_example(item, spec.dataset_format)
                except Unconvertible as exc:
                    problem_count += 1
                    if len(problems) < LISTED_PROBLEMS:
                        problems.append({"where": where, "message": str(exc)})
                    continue
                sources[converted.source_format] = sources.get(converted.source_format, 0) + 1
                for change in converted.changes:
                    changes[change] = changes.get(change, 0) + 1
                line = canonical_bytes(converted.example)
                hashes.append(content_hash(line))
                staged.write(line + b"\n")
        examples = len(hashes)
        written = examples > 0 and (problem_count == 0 or skip_unconvertible)
        plan = (
            split_plan(
                hashes,
                validation_split,
                max_validation_examples=spec.max_validation_examples,
                model=spec.name,
            )
            if validation_split is not None and written
            else None
        )
        if written:
            _write_outputs(
                staging,
                output,
                (validation_output, plan.threshold) if plan and validation_output else None,
            )
    except _ReadError as exc:
        raise _usage(str(exc)) from None
    finally:
        staging.unlink(missing_ok=True)

    summary = {
        "input": str(source),
        "model": spec.name,
        "format": "legacy messages" if spec.dataset_format == "legacy" else "Gemini contents",
        "examples": examples,
        "sources": sources,
        "changes": changes,
        "unconvertible": problem_count,
        "unconvertible_listed": problems,
        "written": written,
        "output": str(output) if written else None,
        "validation": None
        if plan is None
        else {
            "output": str(validation_output),
            "fraction": validation_split,
            "examples": plan.validation,
            "training_examples": plan.training,
            "drawn_before_limits": plan.asked,
            "limits_applied": list(plan.limits),
        },
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        typer.echo(_describe(summary))
    raise typer.Exit(0 if written else 1)


def _describe(s: dict) -> str:
    lines = []
    kinds = ", ".join(f"{name} {n:,}" for name, n in sorted(s["sources"].items()))
    lines.append(
        f"{s['examples']:,} example(s) of {s['input']} converted to {s['format']} for {s['model']}"
        + (f" (from {kinds})" if kinds else "")
    )
    for change, n in sorted(s["changes"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  changed: {change} ({n:,} example(s))")
    if not s["changes"] and s["examples"]:
        lines.append("  changed: nothing but the layout of each line")
    if s["unconvertible"]:
        lines.append(f"  {s['unconvertible']:,} example(s) could not be converted:")
        lines.extend(f"    {p['where']}: {p['message']}" for p in s["unconvertible_listed"])
        if s["unconvertible"] > len(s["unconvertible_listed"]):
            lines.append(
                f"    ... and {s['unconvertible'] - len(s['unconvertible_listed']):,} more"
            )
    if not s["written"]:
        why = (
            "no example converted"
            if not s["examples"]
            else "fix those lines or pass --skip-unconvertible to leave them out"
        )
        lines.append(f"nothing written: {why}")
        return "\n".join(lines)
    split = s["validation"]
    if split is None:
        lines.append(f"wrote {s['output']} ({s['examples']:,} examples)")
        lines.append(f"next: autotune validate {s['output']} --model {s['model']}")
        return "\n".join(lines)
    lines.append(
        f"wrote {s['output']} ({split['training_examples']:,} training examples) and {split['output']} "
        f"({split['examples']:,} validation examples, drawn by content at {split['fraction']:g})"
    )
    for limit in split["limits_applied"]:
        lines.append(f"  the validation set was cut from {split['drawn_before_limits']:,}: {limit}")
    if split["examples"] == 0:
        lines.append(
            "  no validation example was drawn: the dataset is too small for that fraction"
        )
    lines.append(
        f"next: autotune validate {s['output']} --validation {split['output']} --model {s['model']}"
    )
    return "\n".join(lines)


class _ReadError(Exception):
    pass


def _examples(source: Path) -> Iterator[tuple[str, object]]:
    """(where, parsed example or the Unconvertible saying why it is not one) for each example."""
    from autotune.preparation import Unconvertible

    if source.suffix.lower() == ".csv":
        yield from _csv_examples(source)
        return
    with source.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{source}:{number}"
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue  # a blank line holds no example
            try:
                yield where, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield where, Unconvertible(f"not UTF-8 (byte {exc.start + 1})")
            except ValueError as exc:
                yield where, Unconvertible(f"not valid JSON: {exc}")


def _csv_examples(source: Path) -> Iterator[tuple[str, object]]:
    import csv

    from autotune.preparation import PROMPT_KEYS, RESPONSE_KEYS, Unconvertible, prompt_response_row

    try:
        handle = source.open(encoding="utf-8-sig", newline="")
        with handle:
            reader = csv.DictReader(handle)
            header = [str(h).strip().lower() for h in (reader.fieldnames or [])]
            if not any(k in header for k in PROMPT_KEYS) or not any(
                k in header for k in RESPONSE_KEYS
            ):
                raise _ReadError(
                    f"{source}: the first row must name the columns: prompt and response (or completion), "
                    f"optional system; found {', '.join(header) or 'nothing'}"
                )
            start = reader.line_num + 1
            for row in reader:
                where = (
                    f"{source}:{start}"
                    if start == reader.line_num
                    else f"{source}:{start}-{reader.line_num}"
                )
                start = reader.line_num + 1
                if None in row:
                    yield (
                        where,
                        Unconvertible(
                            f"the row has {len(header) + len(row[None])} fields; the header names {len(header)}"
                        ),
                    )
                    continue
                if not any((v or "").strip() for v in row.values()):
                    continue
                yield where, prompt_response_row(row)
    except UnicodeDecodeError as exc:
        raise _ReadError(
            f"{source}: not UTF-8 (byte {exc.start + 1} of a read block); save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise _ReadError(f"{source}: not readable as CSV: {exc}") from None


def _write_outputs(staging: Path, output: Path, split: tuple[Path, int] | None) -> None:
    """The staged lines to the outputs, each written whole under a temporary name, then renamed.
    `split`: the validation output and the hash threshold that picks its examples."""
    from autotune.preparation import content_hash

    validation_output, threshold = split if split is not None else (None, 0)

    partial_train = output.with_name(f".{output.name}.writing")
    partial_validation = (
        validation_output.with_name(f".{validation_output.name}.writing")
        if validation_output
        else None
    )
    try:
        with staging.open("rb") as lines, partial_train.open("wb") as train:
            validation = partial_validation.open("wb") if partial_validation else None
            try:
                for line in lines:
                    if validation is not None and content_hash(line.rstrip(b"\n")) < threshold:
                        validation.write(line)
                    else:
                        train.write(line)
            finally:
                if validation is not None:
                    validation.close()
        os.replace(partial_train, output)
        if partial_validation is not None and validation_output is not None:
            os.replace(partial_validation, validation_output)
    finally:
        partial_train.unlink(missing_ok=True)
        if partial_validation is not None:
            partial_validation.unlink(missing_ok=True)


def _usage(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(2)
