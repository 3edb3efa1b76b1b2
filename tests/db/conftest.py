"""Fixtures of the database tests that several modules share."""

# respx's Graph for the Instagram care tests; a module with its own `graph` overrides it.
from tests.helpers.instagram_process import graph  # noqa: F401
