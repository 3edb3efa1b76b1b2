"""Domain errors the rest of the application sees instead of driver errors."""

from __future__ import annotations


class DatabaseUnavailableError(Exception):
    """The database could not be reached, even after the retry."""
