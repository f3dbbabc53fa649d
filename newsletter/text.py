"""One rule for "one line of text": no line break and no control character.

Names, titles, subjects and settings end up in headers, where Python's folding turns every
character str.splitlines() breaks on (U+0085 and U+2028 too, not only CR and LF) into a
real line break that would start a header of its own. So one line of text holds none of
the C0 controls, DEL, the C1 controls (NEL U+0085 among them) or the Unicode line and
paragraph separators; a tab only where the caller allows it. Config, articles, render,
message, subscribers and feeds all use this rule, each raising its own error.
"""

from __future__ import annotations

import re

# Every character str.splitlines() breaks on.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_FORBIDDEN = "\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029"
_NOT_ONE_LINE = re.compile(f"[{_FORBIDDEN}\t]")
_NOT_ONE_LINE_TAB_OK = re.compile(f"[{_FORBIDDEN}]")


def forbidden_char(text: str, *, tab: bool = False) -> str | None:
    """The first character that may not be in one line of text, or None when there is none.

    `tab`: a tab is allowed (it is a control character, but not a line break).
    """
    found = (_NOT_ONE_LINE_TAB_OK if tab else _NOT_ONE_LINE).search(text)
    return found.group() if found else None


def is_line_break(char: str) -> bool:
    """Whether `char` is one of the characters str.splitlines() breaks on."""
    return char in LINE_BREAKS


def clean_line(text: str) -> str:
    """Text from outside (a feed) made one line: forbidden characters become spaces, and
    runs of white space one space."""
    return " ".join(_NOT_ONE_LINE.sub(" ", text).split())
