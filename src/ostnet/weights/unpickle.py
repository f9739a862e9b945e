"""A pickle reader that accepts only numpy arrays and plain containers.

``pickle.load`` can call any importable function while it reads (that is how a pickle "runs code"). This
reader resolves exactly three globals, the ones numpy needs to rebuild an array (``_reconstruct``,
``ndarray``, ``dtype``); any other global, e.g. ``os.system`` or ``builtins.eval``, stops the read with
``UnsafePickle`` before it is called. After reading, every leaf must be a numeric numpy array (object arrays
are refused) or a plain value (str, int, float, bool, None), inside dicts, lists and tuples.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from ostnet.errors import OstnetError

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")


class UnsafePickle(OstnetError):
    """The pickle asked for something other than numpy arrays and plain containers."""


def _allowed(module: str, name: str) -> Any:
    if module in _NUMPY_MODULES and name == "_reconstruct":
        return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor, whatever module holds it
    if module == "numpy" and name == "ndarray":
        return np.ndarray
    if module == "numpy" and name == "dtype":
        return np.dtype
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise UnsafePickle(f"refused to load {module}.{name}: only numpy arrays and plain containers are allowed")
        return found


def _check_tree(value: Any, where: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise UnsafePickle(f"{where or 'top level'}: a {type(key).__name__} key")
            _check_tree(item, f"{where}/{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_tree(item, f"{where}[{i}]")
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise UnsafePickle(f"{where}: an array of Python objects")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise UnsafePickle(f"{where}: a {type(value).__name__}")


def safe_load(file: BinaryIO | bytes) -> Any:
    """Read one pickle of numpy arrays and plain containers; ``UnsafePickle`` for anything else,
    ``OstnetError`` for a truncated or corrupt pickle."""
    stream = io.BytesIO(file) if isinstance(file, bytes) else file
    try:
        value = _RestrictedUnpickler(stream).load()
    except UnsafePickle:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data raises many kinds
        raise OstnetError(f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    _check_tree(value)
    return value
