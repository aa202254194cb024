"""The one exception type users see: a clear, one-line message, no traceback."""

import click


class BenchError(click.ClickException):
    """A user-facing error (bad option, missing data, mismatched model).

    The CLI prints ``Error: <message>`` and exits with status 1; Python callers
    get an ordinary exception carrying the same message.
    """
