"""Before/after numbers of the code's shape (issue 10): the longest functions, the files over 350 lines,
wrong-way imports and ``duplicates`` rows of ``src/ostnet``, at an older commit and now.

    python scripts/code_metrics.py                      # before = cd852a9 (issue 10's base), after = working tree
    python scripts/code_metrics.py --before REV --after REV --top 10

A commit is read with ``git archive`` into a temporary folder (no worktree is registered). Wrong-way imports
are counted with the package's own checker, ``ostnet._layers.wrong_way_imports`` of this checkout, applied to
each tree's ``src/ostnet``; ``duplicates`` (on PATH) is called on each tree's ``src``.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = "cd852a9"
LONG_FILE = 350
MANY_PARAMETERS = 6
FOCUS = ("ostnet/inference/pipeline.py", "ostnet/inference/paste.py", "ostnet/inference/faces.py")  # issue 10, item 6


@dataclass(frozen=True)
class Metrics:
    label: str
    functions: list[tuple[int, str]]  # (lines, "path:line name"), longest first
    many_parameters: list[tuple[int, str]]  # (parameters, "path:line name") of functions with more than 6
    focus: list[str]  # "path: N lines, longest function M" of the FOCUS files
    long_files: list[tuple[int, str]]  # (lines, path) of files over LONG_FILE lines
    wrong_way: list[str] | None  # "module:line imports target"; None without the checker
    duplicate_pairs: int
    duplicate_rows: list[str]


def function_lengths(package: Path) -> list[tuple[int, str]]:
    """Every function and method of the package with its length in lines (docstring included)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - node.lineno + 1, where))
    return sorted(found, key=lambda item: (-item[0], item[1]))


def many_parameters(package: Path) -> list[tuple[int, str]]:
    """Functions taking more than MANY_PARAMETERS parameters (``self``/``cls`` not counted)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs] if x.arg not in ("self", "cls")]
                if len(names) > MANY_PARAMETERS:
                    found.append((len(names), f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"))
    return sorted(found, key=lambda item: (-item[0], item[1]))


def focus(package: Path, functions: list[tuple[int, str]]) -> list[str]:
    lines = []
    for name in FOCUS:
        path = package.parent / name
        if not path.is_file():
            lines.append(f"{name}: absent")
            continue
        longest = max((n for n, where in functions if where.startswith(f"{name}:")), default=0)
        lines.append(f"{name}: {len(path.read_text(encoding='utf-8').splitlines())} lines, longest function {longest}")
    return lines


def long_files(package: Path) -> list[tuple[int, str]]:
    sizes = [
        (len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(package.parent)))
        for p in package.rglob("*.py")
    ]
    return sorted((item for item in sizes if item[0] > LONG_FILE), key=lambda item: (-item[0], item[1]))


def wrong_way_imports(package: Path) -> list[str] | None:
    try:
        from ostnet._layers import wrong_way_imports as check
    except ImportError:  # the checker is not in this checkout
        return None
    return [f"{edge.source}:{edge.line} imports {edge.target}" for edge in check(package)]


def duplicate_rows(src: Path) -> tuple[int, list[str]]:
    """The number of pairs ``duplicates`` reports for ``src`` and its rows."""
    run = subprocess.run(
        ["duplicates", "--repo", str(src), "--most", "200", "--seconds", "120"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = run.stdout.splitlines()
    match = re.match(r"(\d+) pairs", lines[0]) if lines else None
    return (int(match.group(1)) if match else 0), [line for line in lines if re.match(r"D\d+ ", line)]


def measure(label: str, root: Path) -> Metrics:
    package = root / "src" / "ostnet"
    pairs, rows = duplicate_rows(root / "src")
    functions = function_lengths(package)
    return Metrics(
        label, functions, many_parameters(package), focus(package, functions), long_files(package),
        wrong_way_imports(package), pairs, rows,
    )  # fmt: skip


def export(rev: str, folder: Path) -> Path:
    """``src/`` of commit ``rev`` unpacked into ``folder``."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def report(before: Metrics, after: Metrics, top: int) -> str:
    def count(edges: list[str] | None) -> str:
        return "n/a (no checker)" if edges is None else str(len(edges))

    def longest(m: Metrics, n: int) -> str:
        return ", ".join(f"{lines}" for lines, _ in m.functions[:n])

    out = [
        f"| measure (src/ostnet) | before: {before.label} | after: {after.label} |",
        "|---|---|---|",
        f"| functions | {len(before.functions)} | {len(after.functions)} |",
        f"| longest {top} functions (lines) | {longest(before, top)} | {longest(after, top)} |",
        *(
            f"| functions over {n} lines | {sum(lines > n for lines, _ in before.functions)} | "
            f"{sum(lines > n for lines, _ in after.functions)} |"
            for n in (40, 60)
        ),
        f"| functions with over {MANY_PARAMETERS} parameters | {len(before.many_parameters)} | "
        f"{len(after.many_parameters)} |",
        f"| files over {LONG_FILE} lines | {len(before.long_files)} | {len(after.long_files)} |",
        f"| wrong-way imports | {count(before.wrong_way)} | {count(after.wrong_way)} |",
        f"| `duplicates` pairs | {before.duplicate_pairs} | {after.duplicate_pairs} |",
    ]
    for m in (before, after):
        out += ["", f"## {m.label}", "", f"Longest {top} functions:"]
        out += [f"  {lines:4d}  {where}" for lines, where in m.functions[:top]]
        out += [f"Functions with over {MANY_PARAMETERS} parameters:"]
        out += [f"  {n:4d}  {where}" for n, where in m.many_parameters]
        out += ["Issue 10's file pipeline:"] + [f"  {line}" for line in m.focus]
        out += [f"Files over {LONG_FILE} lines:"] + [f"  {lines:4d}  {path}" for lines, path in m.long_files]
        out += ["Wrong-way imports:"] + [f"  {edge}" for edge in m.wrong_way or []] + ["`duplicates` rows (first 10):"]
        out += [f"  {row}" for row in m.duplicate_rows[:10]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BASE, help=f"commit to measure first (default {BASE})")
    parser.add_argument("--after", default=None, help="commit to measure second (default: the working tree)")
    parser.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ostnet-metrics-") as tmp:
        before = measure(args.before, export(args.before, Path(tmp) / "before"))
        if args.after is None:
            after = measure("working tree", REPO)
        else:
            after = measure(args.after, export(args.after, Path(tmp) / "after"))
    print(report(before, after, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
