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


def unpickling_error(path: object, what: str, exc: BaseException) -> OstnetError:
    """The one-line error for a ``torch.load(weights_only=True)`` that failed on ``path`` (a ``what``).

    A file that needs a Python global is "not a trusted <what>": PyTorch's advice to retry with
    ``weights_only=False`` (which would run the file's code) never reaches the user. Anything else is
    "cannot read <what>" with the first line of the reason.
    """
    text = str(exc).strip()
    if type(exc).__name__ == "UnpicklingError" and "global" in text.lower():
        return OstnetError(f"{path}: not a trusted {what} (it holds Python objects other than tensors; not loaded)")
    reason = "" if "weights_only" in text else f" ({(text.splitlines() or [type(exc).__name__])[0][:200]})"
    return OstnetError(f"{path}: cannot read {what}: corrupt or not a PyTorch file{reason}")
