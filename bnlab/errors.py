"""The errors every layer raises for a user's mistake, and the CLI prints without a traceback.

Anything else that reaches the command line is a bug and shows its traceback. An error that
library callers may also catch as a builtin (a bad value, a missing file) subclasses both.
"""


class BnlabError(Exception):
    """An error meant for the user: printed as one line, exit status 2, no traceback."""


class ResultsNotFoundError(BnlabError, FileNotFoundError):
    """A directory given to a command does not hold the results the command reads."""
