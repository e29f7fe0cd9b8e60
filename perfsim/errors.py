"""The one exception users see: a clear, one-line message about their input."""


class PerfsimError(ValueError):
    """A user mistake (bad spec, bad flag, bad op string); the CLI prints it and exits 2."""
