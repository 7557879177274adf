"""Errors a command reports in one line (exit code 2)."""


class CommandError(Exception):
    """A command cannot do what it was asked; the message says why, in one line."""
