"""The error every layer raises for a user's mistake, and the CLI prints without a traceback."""


class BnlabError(Exception):
    """An error meant for the user: printed as one line, exit status 2, no traceback."""
