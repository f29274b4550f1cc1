"""The one error split raises for what a person must fix (bad input, a bad output location)."""


class SplitError(Exception):
    """Bad input or output location: the message says what to fix."""
