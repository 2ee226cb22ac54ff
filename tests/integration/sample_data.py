"""Datasets and names the integration tests upload: distinct per tag, so no two tests share a
content key (the pipeline would rightly skip the second as a re-upload)."""

from __future__ import annotations

import json
import uuid


def conversation_dataset(tag: str, n: int = 20, *, marker: str = "") -> bytes:
    """n valid two-turn examples; `marker` is planted in every turn (to find leaks of content)."""
    lead = f"{marker} " if marker else ""
    rows = (
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"{lead}{tag}: question {i}?"}]},
                {"role": "model", "parts": [{"text": f"{lead}Answer {i} for {tag}."}]},
            ]
        }
        for i in range(n)
    )
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"
