"""Text for a terminal: whatever an uploader put into an object name, a manifest or metadata
reaches `autotune jobs`, `status`, `watch` and `validate`, and must not drive the terminal of the
colleague reading it (escape sequences can retitle the window, rewrite earlier lines, or hide
text). Control characters (C0, DEL, C1), bidirectional overrides and lone surrogates are shown
escaped, as \\x1b or \\u202e, never sent raw. Kept outside autotune.cli so `autotune validate`,
which starts without the command-line framework, escapes its text the same way."""

from __future__ import annotations

# Bidirectional controls reorder what is shown (an object name can read as another one).
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def terminal_text(text: object, *, newlines: bool = True) -> str:
    """`text` with every character that would drive a terminal escaped; `newlines` keeps "\\n"
    (our own line breaks), otherwise it is escaped too (a value inside one line)."""
    out = []
    for char in str(text):
        code = ord(char)
        if char == "\n" and newlines:
            out.append(char)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in _BIDI or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
