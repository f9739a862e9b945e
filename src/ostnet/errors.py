"""User-facing errors.

Raise ``OstnetError`` for bad input a user can fix (missing file, wrong format, mismatched checkpoint): the
command line prints its message as one line and exits with status 2, never with a traceback.
"""


class OstnetError(Exception):
    """An error caused by the user's input; its message names the file or value and the problem."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, ``docker stop``), raised where Ctrl-C would be so that the same clean-up
    runs; the command line then exits with 143 (128 + SIGTERM) instead of Ctrl-C's 130."""


def interrupt_exit_code(exc: BaseException) -> int:
    """The conventional exit status of an interrupted command: 143 after SIGTERM, 130 after Ctrl-C."""
    return 143 if isinstance(exc, Terminated) else 130
