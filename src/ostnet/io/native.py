"""Quieting what native (C++) libraries write straight to the process's file descriptors."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def _redirected(fd: int, stream) -> Iterator[None]:
    stream.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        stream.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@contextmanager
def silenced_stderr(stdout: bool = False) -> Iterator[None]:
    """Point file descriptor 2 (and 1 with ``stdout``) at /dev/null for the duration: MediaPipe's C++ logging
    and TorchScript's graph dump on a failed ONNX export write there directly, past ``sys.stderr``."""
    with ExitStack() as stack:
        stack.enter_context(_redirected(2, sys.stderr))
        if stdout:
            stack.enter_context(_redirected(1, sys.stdout))
        yield
