"""The one exception type users see: a clear message that names the file or key at fault."""


class VQEError(Exception):
    """Bad input or configuration. The CLI prints the message and exits with status 2."""
