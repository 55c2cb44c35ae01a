"""Exceptions shared across quantlab (kept import-light)."""


class DataError(ValueError):
    """Input data that would give silently wrong numbers; the message names the
    file or variable, the asset and the timestamp at fault."""
