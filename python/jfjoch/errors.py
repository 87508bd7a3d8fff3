"""Exceptions with one-line messages; the CLI prints them and exits with the SPEC exit code."""

from __future__ import annotations

__all__ = ["CorruptFrameError", "InputError", "JfjochError", "ProcessingError", "UsageError"]


class JfjochError(Exception):
    """Base class; str(e) is a complete one-line message for the user."""

    exit_code = 1


class UsageError(JfjochError):
    """Bad option or option value (exit code 2)."""

    exit_code = 2


class InputError(JfjochError):
    """Missing, unreadable or invalid input file (exit code 2)."""

    exit_code = 2


class ProcessingError(JfjochError):
    """Processing failed (exit code 1)."""

    exit_code = 1


class CorruptFrameError(JfjochError):
    """One image could not be decoded; the run reports it, counts it as failed and continues."""

    exit_code = 1
