"""Offline token estimate for one example, and the distribution over a file.

No exact Gemini tokenizer runs offline: google-genai's LocalTokenizer downloads its
SentencePiece model from the network at run time (and needs the sentencepiece package),
which the validate function must not do. So the figures are a stated heuristic:

- estimate:    ceil(characters / 4) + 4 per turn + the media's fixed tokens
               (Gemini's documented "about 4 characters per token" for English text)
- lower bound: characters // 8 + the media's fixed tokens. Natural-language text and code
               average 3-5 characters per token, so a count above the limit even at 8 is
               treated as certain. Long runs of one repeated character can pack more per
               token; those are the only inputs the bound may overstate.

The limit check: lower bound > limit is `token_limit_exceeded`; otherwise an estimate at or
above 90% of the limit is `token_limit_risk`.
"""

from __future__ import annotations

from typing import TypedDict

METHOD = (
    "heuristic: ceil(characters/4) + 4 per turn + media at the catalog's rates (258 per image or PDF page, "
    "audio 32 per second, video 258 per second at default media resolution); lower bound characters/8 "
    "(no exact Gemini tokenizer runs offline)"
)
MEDIA_METHOD = (
    "images and PDFs: tokens_each per item (a PDF counts as one page); audio and video: tokens_per_second x the "
    "clip's length from videoMetadata offsets (low media resolution: tokens_per_second_low; a length read from a "
    "video's header with --check-files is checked against the length limit but not counted); an "
    "example with a PDF, or with audio or video of unknown length (counted as 0 seconds), has a token count "
    "that is a lower bound (lower_bound_examples)"
)
CHARS_PER_TOKEN = 4
CHARS_PER_TOKEN_LOWER_BOUND = 8
TOKENS_PER_TURN = 4
RISK_FRACTION = 0.9


def estimate_tokens(chars: int, turns: int, media_tokens: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_TURN * turns + media_tokens


def lower_bound_tokens(chars: int, media_tokens: int) -> int:
    return chars // CHARS_PER_TOKEN_LOWER_BOUND + media_tokens


EXACT_BELOW = 4096


class TokenSummary(TypedDict):
    examples: int
    total: int
    min: int
    median: int
    p95: int
    max: int
    histogram: list[dict[str, int]]  # {"from", "to", "examples"} per bin


class TokenHistogram:
    """min/median/p95/max/total in constant memory: exact below 4,096 tokens, within 1% above
    (a larger count is kept to its top 8 bits). `small` is a plain list so the validator's
    hot loop can count with one index increment; everything else goes through add()."""

    def __init__(self) -> None:
        self.small = [0] * EXACT_BELOW
        self._large: dict[int, int] = {}
        self.total = 0
        self._large_min = 0
        self._large_max = 0

    def add(self, tokens: int) -> None:
        self.total += tokens
        if tokens < EXACT_BELOW:
            self.small[tokens] += 1
            return
        self._large_max = max(self._large_max, tokens)
        self._large_min = tokens if not self._large_min else min(self._large_min, tokens)
        shift = tokens.bit_length() - 8
        key = (tokens >> shift) << shift
        self._large[key] = self._large.get(key, 0) + 1

    @property
    def count(self) -> int:
        return sum(self.small) + sum(self._large.values())

    def _values(self) -> list[tuple[int, int]]:
        pairs = [(v, n) for v, n in enumerate(self.small) if n]
        pairs.extend(sorted(self._large.items()))
        return pairs

    def summary(self) -> TokenSummary:
        pairs = self._values()
        count = sum(n for _, n in pairs)
        if not count:
            return {
                "examples": 0,
                "total": 0,
                "min": 0,
                "median": 0,
                "p95": 0,
                "max": 0,
                "histogram": [],
            }
        low = pairs[0][0] if pairs[0][0] < EXACT_BELOW else self._large_min
        high = self._large_max if self._large else pairs[-1][0]

        def percentile(fraction: float) -> int:
            rank = max(1, -(-count * int(fraction * 1000) // 1000))
            seen = 0
            for value, n in pairs:
                seen += n
                if seen >= rank:
                    return min(max(value, low), high)
            return high

        return {
            "examples": count,
            "total": self.total,
            "min": low,
            "median": percentile(0.5),
            "p95": percentile(0.95),
            "max": high,
            "histogram": _bins(pairs, low, high),
        }


HISTOGRAM_BINS = 20


def _bins(pairs: list[tuple[int, int]], low: int, high: int) -> list[dict[str, int]]:
    """Examples per equal-width token range from min to max (the report page draws these); a
    count kept to its top 8 bits falls in the bin of its rounded value, clamped to [min, max]."""
    width = max(1, -(-(high - low + 1) // HISTOGRAM_BINS))
    counts = [0] * (-(-(high - low + 1) // width))
    for value, n in pairs:
        counts[(min(max(value, low), high) - low) // width] += n
    return [
        {"from": low + i * width, "to": min(low + (i + 1) * width - 1, high), "examples": n}
        for i, n in enumerate(counts)
    ]
