"""Errors a command reports in one line (exit code 2)."""

from storage.errors import UserError


class CommandError(UserError):
    """A command cannot do what it was asked; the message says why, in one line."""
