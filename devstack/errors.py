"""The one error type of the local stack."""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(RuntimeError):
    """A piece of the local stack could not be set up, started or reached."""
