"""User-facing errors.

Raise ``OstnetError`` for bad input a user can fix (missing file, wrong format, mismatched checkpoint): the
command line prints its message as one line and exits with status 2, never with a traceback.
"""


class OstnetError(Exception):
    """An error caused by the user's input; its message names the file or value and the problem."""
