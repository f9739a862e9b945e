"""The one check every command runs before it writes: no output may be, or replace, one of its inputs.

``check_outputs(inputs, outputs)`` compares paths after resolving symbolic links and ``..`` (and, for files
that exist, by device and inode, which also catches hard links and case-insensitive file systems). It
refuses, with one ``OstnetError`` line naming both flags and paths:

* an output that is an input (``animate --driving v.mp4 --output v.mp4``);
* two outputs that are the same path or nested (``--frames d --output d/out.mp4``);
* an output folder that holds an input (``evaluate --pairs out/pairs.csv --output out``): a command owns
  its output folder and may replace what it finds there.

Optional entries are ``None`` and skipped, so each command passes all its paths in one call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ostnet.errors import OstnetError

PathLike = str | os.PathLike[str]


def resolved(path: PathLike) -> Path:
    """``path`` made absolute with links and ``..`` resolved (also for a path that does not exist yet)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def same_path(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file or folder (links, ``..``, hard links resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare the resolved names
        return resolved(a) == resolved(b)


def is_inside(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` lies below ``folder`` (not equal to it), after resolving both."""
    p, f = resolved(path), resolved(folder)
    return p != f and p.is_relative_to(f)


def check_outputs(
    inputs: Mapping[str, PathLike | None],
    outputs: Mapping[str, PathLike | None],
    folders: tuple[str, ...] = (),
) -> None:
    """Raise ``OstnetError`` when an output is an input, two outputs collide, or an output folder holds an input.

    ``inputs`` / ``outputs`` map a flag (``"--driving"``) to its path (``None`` = not given); ``folders`` names
    the outputs that are folders (checked for inputs or other outputs inside them).
    """
    given_in = {flag: path for flag, path in inputs.items() if path is not None}
    given_out = {flag: path for flag, path in outputs.items() if path is not None}
    for flag, out in given_out.items():
        if flag in folders and Path(out).exists() and not Path(out).is_dir():
            raise OstnetError(f"{out}: {flag} is a file, expected a folder")
        if flag not in folders and Path(out).is_dir():
            raise OstnetError(f"{out}: {flag} is a folder, expected a file name")
    for out_flag, out in given_out.items():
        for in_flag, path in given_in.items():
            if same_path(out, path):
                raise OstnetError(
                    f"{out}: {out_flag} is the input {in_flag} ({path}); writing it would destroy the input, "
                    f"choose another {out_flag}"
                )
            if out_flag in folders and is_inside(path, out):
                raise OstnetError(f"{out}: the {out_flag} folder holds the input {in_flag} ({path}); choose another")
    flags = list(given_out)
    for i, a in enumerate(flags):
        for b in flags[i + 1 :]:
            pa, pb = given_out[a], given_out[b]
            nested = (a in folders and is_inside(pb, pa)) or (b in folders and is_inside(pa, pb))
            if same_path(pa, pb) or nested:
                raise OstnetError(f"{pb}: {b} collides with {a} ({pa}); give them separate paths")


def missing_folders(path: PathLike) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    missing = []
    for folder in Path(os.path.abspath(path)).parents:
        if folder.exists():
            break
        missing.append(folder)
    return missing


@contextmanager
def removing_new_folders(*paths: PathLike | None) -> Iterator[None]:
    """On any exception (Ctrl-C included), remove the folders above ``paths`` that the body created and
    left empty, so that a failed command leaves no trace; folders that existed before are never touched."""
    created = [folder for path in paths if path is not None for folder in missing_folders(path)]
    try:
        yield
    except BaseException:
        for folder in sorted(set(created), key=lambda f: len(f.parts), reverse=True):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass
        raise


def check_readable(path: PathLike, what: str, folder: bool = False, missing: str | None = None) -> None:
    """``OstnetError`` naming ``path`` when it is missing ("<what> not found", or ``missing``), is the wrong
    kind (file/folder) or cannot be read ("permission denied")."""
    path = Path(path)
    if not path.exists():
        raise OstnetError(f"{path}: {missing or what + ' not found'}")
    if folder != path.is_dir():
        raise OstnetError(f"{path}: is {'a file' if folder else 'a folder'}, expected the {what}")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise OstnetError(f"{path}: permission denied, cannot read the {what}")
