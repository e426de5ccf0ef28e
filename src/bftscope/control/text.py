"""What text a name or a description may contain.

Names (users, projects, simulations) are shown in lists, logs, terminals and file listings. A NUL cuts
them short in C-based tools; a bidi override (U+202E) makes ``evil\u202etxt.exe`` display as
``evilexe.txt``; zero-width and other invisible format characters make two different names look the same;
line breaks forge extra lines in logs. So a name may hold no control, format, surrogate, private-use,
unassigned or line/paragraph-separator character. A description is free text: it keeps tabs and line
breaks, but no other control character and no bidi control.
"""

from __future__ import annotations

import unicodedata

from bftscope.errors import InputError

__all__ = ["check_description", "check_name", "description_problem", "name_problem"]

_NAME_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEXT_WHITESPACE = frozenset("\t\n\r")


def _show(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def name_problem(value: str, what: str = "name") -> str | None:
    """Why ``value`` cannot be a name, or None when it can."""
    for ch in value:
        if unicodedata.category(ch) in _NAME_REFUSED:
            return f"{what} must not contain control, invisible or formatting characters ({_show(ch)})"
    return None


def description_problem(value: str, what: str = "description") -> str | None:
    """Why ``value`` cannot be a description, or None when it can."""
    for ch in value:
        if ch in _BIDI_CONTROLS or (unicodedata.category(ch) in ("Cc", "Cs") and ch not in _TEXT_WHITESPACE):
            return f"{what} must not contain control or bidi characters ({_show(ch)})"
    return None


def check_name(value: str, what: str = "name") -> str:
    """``value`` when it is a valid name; :class:`InputError` (400) otherwise."""
    problem = name_problem(value, what)
    if problem:
        raise InputError(problem)
    return value


def check_description(value: str, what: str = "description") -> str:
    problem = description_problem(value, what)
    if problem:
        raise InputError(problem)
    return value
