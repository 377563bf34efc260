"""Text shown to people: characters that would not print as themselves, escaped (no pytest)."""

from __future__ import annotations


def printable(text: str, keep: str = "") -> str:
    """``text`` with every character that does not print as itself escaped (``\\x1b``,
    ``\\u202e``, a line break), but those in ``keep``: a reply, an error or an id cannot
    rewrite the line, fake another, or print like a different name."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape").decode() for c in text
    )
