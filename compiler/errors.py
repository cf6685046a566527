"""Errors that reach the user as one clear line, never as a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if any is close enough to suggest."""
    by_lower: dict[str, str] = {}
    for choice in choices:  # case never decides: 'Relu' suggests 'relu', not 'selu'
        by_lower.setdefault(choice.lower(), choice)
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


class RecforgeError(Exception):
    """Base of every error the CLI reports without a traceback (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(RecforgeError):
    """A config value is wrong. ``key`` is its dotted path, e.g. ``model.buyer_tower.layers[1]``."""

    def __init__(
        self,
        key: str,
        problem: str,
        *,
        suggestion: str | None = None,
        location: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.key = key
        self.problem = problem
        self.suggestion = suggestion
        self.location = location
        text = f"{key}: {problem}"
        if suggestion:
            text += f"; did you mean '{suggestion}'?"
        if location:
            text += f" [{location}]"
        super().__init__(text, hint=hint)


class PluginError(RecforgeError):
    """A plugin is broken, clashes with another, or targets another hook spec version."""


class PassFailure(RecforgeError):
    """An error-level static pass finding stopped the emit."""

    def __init__(self, message: str, findings: list) -> None:
        super().__init__(message)
        self.findings = findings
