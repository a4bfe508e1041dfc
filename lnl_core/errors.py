"""The one exception type that user-facing code raises for bad input.

The CLI prints ``LNLError`` messages as a single line on stderr and exits with
status 2; library callers can catch it (it is a ``ValueError``).
"""

from __future__ import annotations


class LNLError(ValueError):
    """Bad input: an unknown name, an out-of-range value, missing data, a bad checkpoint."""


class DataNotFoundError(LNLError, FileNotFoundError):
    """A data set is not on this machine; the message says how to get it."""
