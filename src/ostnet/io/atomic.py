"""The one way ostnet writes outputs: build beside the destination, then rename into place.

* ``atomic_output(path)``: one file. ``with atomic_output("out.png") as tmp: image.save(tmp)``.
  ``atomic_write(path, write)`` is the same with a callback.
* ``AtomicFolder(path)``: one folder, e.g. a dataset or a folder of frames.

Both can also be held open across calls (a streaming writer): ``.tmp`` is the temporary path, ``.commit()``
renames it onto the destination and ``.discard()`` deletes it; ``commit`` after ``discard`` (or the reverse)
does nothing. On any exception, ``KeyboardInterrupt`` included, the temporary file or folder is deleted and
the destination is untouched, so an output is either complete or absent.

Temporary names are ostnet's own and recognisable: ``.<stem>.ostnet-<8 hex>.part<suffix>`` for a file (the
suffix is kept so that encoders can guess the format), ``.<name>.ostnet-<8 hex>.part`` for a folder and
``.<name>.ostnet-<8 hex>.old`` for a folder being replaced. ``is_temporary`` tells them apart from a user's
files, and ``remove_temporaries`` deletes only these, never anything else a folder holds.
"""

from __future__ import annotations

import abc
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ostnet.errors import OstnetError

TEMP_TAG = "ostnet"
_TEMP_NAME = re.compile(rf"^\..+\.{TEMP_TAG}-[0-9a-f]{{8}}\.(part|old)(\.[^.]+)?$")


def _writable_folder(path: Path) -> Path:
    """Create ``path``'s folder if missing; an ``OstnetError`` naming ``path`` if it cannot be written."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OstnetError(f"{path}: cannot create the output folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OstnetError(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OstnetError(f"{path}: the output folder {folder} is not writable")
    return folder


def _temp_name(path: Path, kind: str, keep_suffix: bool) -> str:
    stem, suffix = (path.stem, path.suffix) if keep_suffix else (path.name, "")
    return f".{stem}.{TEMP_TAG}-{uuid.uuid4().hex[:8]}.{kind}{suffix}"


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary file name beside ``path`` that keeps its suffix; creates missing parent folders.

    Raises ``OstnetError`` naming ``path`` when its folder cannot be made or written, or ``path`` is a folder.
    """
    path = Path(path)
    folder = _writable_folder(path)
    if path.is_dir():
        raise OstnetError(f"{path}: is a folder, expected a file name")
    return folder / _temp_name(path, "part", keep_suffix=True)


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True for a name that ``atomic_output`` or ``AtomicFolder`` gives its temporaries (and nothing else)."""
    return _TEMP_NAME.match(Path(path).name) is not None


def remove_temporaries(folder: str | os.PathLike[str], prefix: str = ".") -> list[Path]:
    """Delete the temporaries that an interrupted ostnet run left in ``folder`` (not below it); returns them.

    Only names that ``is_temporary`` recognises and that start with ``prefix`` are touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in sorted(folder.iterdir()) if p.name.startswith(prefix) and is_temporary(p)]
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


class _Atomic(abc.ABC):
    """What the file and folder writers share: ``commit``/``discard`` and the context-manager protocol."""

    path: Path
    tmp: Path

    @abc.abstractmethod
    def _move_into_place(self) -> None: ...

    @abc.abstractmethod
    def _delete(self) -> None: ...

    _closed = False

    def commit(self) -> Path:
        """Rename the temporary onto the destination (an ``OstnetError`` if that fails; then it is deleted)."""
        if not self._closed:
            try:
                self._move_into_place()
            except OSError as exc:
                self.discard()
                raise OstnetError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
            self._closed = True
        return self.path

    def discard(self) -> None:
        """Delete the temporary (if it is there); the destination is untouched."""
        self._closed = True
        self._delete()

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError):
            raise OstnetError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc


class AtomicFile(_Atomic):
    """One output file, written at ``.tmp`` and renamed onto ``path`` (see the module docstring).

    Example::

        with atomic_output("out.png") as tmp:
            image.save(tmp)

    An ``OSError`` inside the block becomes an ``OstnetError`` naming ``path``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.tmp = temp_path_for(self.path)

    def _move_into_place(self) -> None:
        os.replace(self.tmp, self.path)

    def _delete(self) -> None:
        self.tmp.unlink(missing_ok=True)


atomic_output = AtomicFile  # the usual spelling: ``with atomic_output(path) as tmp``


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` inside ``atomic_output(path)``; returns ``path``."""
    with atomic_output(path) as tmp:
        write(tmp)
    return Path(path)


class AtomicFolder(_Atomic):
    """One output folder, built at ``.tmp`` (created on entering, or by ``start()``) and renamed onto ``path``.

    An existing folder at ``path`` is replaced on ``commit`` (renamed aside, then deleted), so the caller
    decides beforehand whether replacing it is allowed. Example::

        with AtomicFolder("dataset") as tmp:
            (tmp / "a.png").write_bytes(...)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.tmp = _writable_folder(self.path) / _temp_name(self.path, "part", keep_suffix=False)
        if self.path.exists() and not self.path.is_dir():
            raise OstnetError(f"{self.path}: exists and is not a folder")

    def start(self) -> Path:
        """Create the temporary folder (if not yet there) and return it."""
        self.tmp.mkdir(exist_ok=True)
        return self.tmp

    def __enter__(self) -> Path:
        return self.start()

    def _move_into_place(self) -> None:
        if not self.tmp.is_dir():  # never started: nothing to write
            return
        if not self.path.exists():
            os.replace(self.tmp, self.path)
            return
        old = self.path.parent / _temp_name(self.path, "old", keep_suffix=False)
        os.replace(self.path, old)
        try:
            os.replace(self.tmp, self.path)
        except OSError:
            os.replace(old, self.path)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _delete(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
