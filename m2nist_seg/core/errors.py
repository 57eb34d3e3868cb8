"""The package's own exception type."""


class M2NISTError(ValueError):
    """Bad input: the message names the file or argument, what was found and what was expected."""
