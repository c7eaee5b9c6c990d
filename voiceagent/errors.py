"""Errors the user can act on.

Every failure that reaches the command line is one of these: a single line that names the
thing that went wrong and how to fix it. The CLI prints ``str(error)`` and exits with
``error.exit_code``; nothing else is shown unless ``--debug`` is given.
"""

from __future__ import annotations


class VoiceAgentError(Exception):
    """Base class: a one-line message plus an optional fix."""

    exit_code: int = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} Fix: {self.fix}"
        return self.message


class UsageError(VoiceAgentError):
    """A bad flag or argument (exit code 2, like typer's own usage errors)."""

    exit_code = 2


class ModelError(VoiceAgentError):
    """A model is unknown, missing, corrupt or cannot be loaded."""


class AudioError(VoiceAgentError):
    """Audio that cannot be read or used: empty, corrupt, not audio at all."""


class DeviceError(VoiceAgentError):
    """A sound device is missing, unknown or was lost."""


class DependencyError(VoiceAgentError):
    """A Python package or system library that voiceagent needs is not installed."""
