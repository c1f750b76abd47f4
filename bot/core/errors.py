"""One error family: every problem labelbot explains to a person derives from `LabelbotError`.

The message of a `LabelbotError` is written for a person (one or a few plain sentences, no
traceback); the CLI and the Slack error handler catch the base class once and show `str(error)`.
Errors tied to one module (a bad import file, a bad markup) subclass it there.
"""

from __future__ import annotations


class LabelbotError(Exception):
    """A problem with a message meant for a person."""


class ConfigError(LabelbotError):
    """A configuration problem explained in one or more plain sentences (never a traceback)."""


class NotFound(LabelbotError, LookupError):
    """A named thing does not exist; the message is shown to a person."""


class Conflict(LabelbotError, ValueError):
    """The request contradicts what is stored; the message is shown to a person."""


class Refused(LabelbotError):
    """A request that must not change anything; the message is shown to the user (ephemeral)."""
