"""The one exception the data layer raises, and the did-you-mean helper its messages use."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(Exception):
    """A data source or data config problem, explained in one message.

    The message names the file and/or the config key (``data.columns.customer_id``), says what
    was expected and, where a near miss exists, suggests the closest valid name.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """Return the choice closest to ``name``, or None if nothing is close.

    Matching is case-insensitive first (``customerid`` -> ``CustomerID``) because column names in
    exported files differ from configs mostly by case and separators.
    """
    options = [str(c) for c in choices]
    by_folded: dict[str, str] = {}
    for option in options:
        by_folded.setdefault(_fold(option), option)
    folded = _fold(name)
    if folded in by_folded:
        return by_folded[folded]
    close = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else None


def suggestion(name: str, choices: Iterable[str]) -> str:
    """`` did you mean 'X'?`` (with a leading space) or an empty string."""
    best = did_you_mean(name, choices)
    return f" Did you mean {best!r}?" if best is not None else ""


def _fold(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")
