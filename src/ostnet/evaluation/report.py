"""Evaluation results: the metric registry, the resumable per-pair journal and the result tables.

* ``PairMetrics``: one evaluated pair (None where a metric does not apply or could not be computed).
* ``PairJournal``: ``<output>/<checkpoint>/per_pair.csv``, appended and flushed after every batch, so an
  interrupted run resumes without recomputing finished pairs. Failed pairs are journalled with a reason.
* ``summarize`` / ``write_results``: one row per checkpoint, one column per metric (mean over the pairs that
  have it) plus pair counts, written as ``results.md``, ``results.csv`` and ``results.json``; with several
  checkpoints this is the comparison table (as paper Tables 1-3).
* ``checkpoint_labels`` / ``bind_checkpoint_folder``: one output folder per checkpoint, tied to the file's
  SHA-256 so that a resumed run never mixes the results of two different checkpoint files.
* ``compose_grid``: the sample grid image.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ostnet.errors import OstnetError
from ostnet.io import atomic_output


@dataclass(frozen=True)
class MetricSpec:
    """A metric column: its name, table header, whether higher is better, and its definition/units."""

    name: str
    header: str
    higher_is_better: bool
    definition: str
    digits: int = 4


METRICS = {
    m.name: m
    for m in (
        MetricSpec("ssim", "SSIM", True, "skimage structural_similarity, data_range=1, 7x7 uniform window, "
                   "sample covariance, RGB [0, 1] at 256x256, mean over channels", 3),
        MetricSpec("psnr", "PSNR", True, "dB, 10 log10(1 / MSE), data_range=1, RGB [0, 1] at 256x256", 2),
        MetricSpec("lpips", "LPIPS", False, "LPIPS v0.1 AlexNet, inputs scaled to [-1, 1], at 256x256", 3),
        MetricSpec("l1", "L1", False, "mean |prediction - target| over pixels and channels, RGB [0, 1]", 4),
        MetricSpec("akd", "AKD", False, "pixels at 256x256: mean |difference| of the 68 x 2 dlib landmark "
                   "coordinates (HOG detector); frames without a detected face are left out and counted", 3),
        MetricSpec("aed", "AED", False, "L2 distance between 128-d dlib face descriptors of prediction and "
                   "ground truth (unitless; < 0.6 ~ same person)", 3),
        MetricSpec("scale_error", "Scale err", False, "|log sqrt(A_out / A_ref)|: A = area of the convex "
                   "hull of the 68 landmarks; ref = ground truth (same identity) or source (cross "
                   "identity)", 3),
        MetricSpec("csim", "CSIM", True, "cosine similarity of dlib face descriptors, prediction vs "
                   "source", 3),
        MetricSpec("identity_distance", "ID dist", False, "L2 distance of dlib face descriptors, prediction "
                   "vs source", 3),
        MetricSpec("pose_distance", "Pose/expr dist", False, "mean L2 distance of 68 landmarks, each set "
                   "centred and divided by sqrt(hull area), prediction vs driving", 3),
        MetricSpec("jitter", "Jitter", False, "reconstruction protocol, consecutive frames of one video: mean "
                   "|(pred_t - pred_t-1) - (gt_t - gt_t-1)| over pixels, RGB [0, 1] at 256x256 (0: the result "
                   "changes from frame to frame exactly as the real video does)", 4),
    )
}  # fmt: skip

SAME_IDENTITY_METRICS = ("ssim", "psnr", "lpips", "l1", "akd", "aed", "scale_error")
CROSS_IDENTITY_METRICS = ("csim", "identity_distance", "pose_distance", "scale_error")
FACE_METRICS = ("akd", "aed", "scale_error", "csim", "identity_distance", "pose_distance")


def metrics_for(protocol: str) -> tuple[str, ...]:
    if protocol == "reconstruction":  # consecutive frames of a video: the temporal metric applies
        return (*SAME_IDENTITY_METRICS, "jitter")
    return CROSS_IDENTITY_METRICS if protocol == "cross-identity" else SAME_IDENTITY_METRICS


@dataclass
class PairMetrics:
    """The result of one pair. status: "ok" or "failed" (then ``reason`` says why and metrics are None).

    ``face_note`` explains missing face metrics (e.g. "no face in prediction").
    """

    pair_id: int
    status: str = "ok"
    reason: str = ""
    ssim: float | None = None
    psnr: float | None = None
    lpips: float | None = None
    l1: float | None = None
    akd: float | None = None
    aed: float | None = None
    scale_error: float | None = None
    csim: float | None = None
    identity_distance: float | None = None
    pose_distance: float | None = None
    jitter: float | None = None
    face_note: str = ""


def _columns(metric_names: Sequence[str]) -> list[str]:
    return ["pair_id", "status", "reason", *metric_names, "face_note"]


def _cell(value: object) -> str:
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


class PairJournal:
    """Per-pair results of one checkpoint, as a CSV that is appended per batch and survives interruption."""

    def __init__(self, path: str | os.PathLike, metric_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = _columns(metric_names)
        self.metric_names = tuple(metric_names)

    def load(self) -> list[PairMetrics]:
        """Rows already journalled; a torn last line (crash mid-write) is dropped and the file rewritten."""
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows or rows[0] != self.columns:
            raise OstnetError(f"{self.path}: per-pair results of another protocol or version; use a new --output")
        results, torn = [], False
        for row in rows[1:]:
            parsed = self._parse(row)
            torn |= parsed is None
            if parsed is not None:
                results.append(parsed)
        if torn:
            self.rewrite(results)
        return results

    def _parse(self, row: list[str]) -> PairMetrics | None:
        if len(row) != len(self.columns) or row[1] not in ("ok", "failed"):
            return None
        try:
            values = {
                name: float(cell) if cell else None for name, cell in zip(self.metric_names, row[3:-1], strict=True)
            }
            return PairMetrics(int(row[0]), row[1], row[2], face_note=row[-1], **values)
        except ValueError:
            return None

    def rewrite(self, results: Iterable[PairMetrics]) -> None:
        """Replace the file's rows with ``results`` (atomically)."""
        with atomic_output(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows(self._row(r) for r in results)

    def _row(self, result: PairMetrics) -> list[str]:
        return [_cell(getattr(result, column)) for column in self.columns]

    def append(self, results: Sequence[PairMetrics]) -> None:
        """Append rows and flush them to disk (fsync), creating the file with its header when needed."""
        if not self.path.exists():
            self.rewrite([])
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(self._row(r) for r in results)
            handle.flush()
            os.fsync(handle.fileno())


def checkpoint_labels(paths: Sequence[str]) -> list[str]:
    """Folder/table names for checkpoints: the file stem; checkpoints that share a stem (two runs'
    ``final.safetensors``) are told apart by the nearest folders in which their paths differ
    (``runs/a/final``, ``runs/b/final`` -> ``a-final``, ``b-final``); the same file twice gets -2, -3, ..."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    labels: list[str] = []
    for path in absolute:
        stem, n = path.stem, 2
        label = _distinguishing_label(path, [q for q in absolute if q.stem == path.stem])
        while label in labels:
            label, n = f"{stem}-{n}", n + 1
        labels.append(label)
    return labels


def _distinguishing_label(path: Path, group: list[Path]) -> str:
    if len(set(group)) < 2:
        return path.stem
    for depth in range(1, len(path.parent.parts) + 1):
        tails = [q.parent.parts[-depth:] for q in group]
        if len({tail for tail in tails if len(tail) == depth}) == len(set(group)):
            mine = path.parent.parts[-depth:]
            differing = [part for i, part in enumerate(mine) if len({t[i] for t in tails if len(t) == depth}) > 1]
            return "-".join([*differing, path.stem])
    return path.stem


def bind_checkpoint_folder(folder: Path, checkpoint: str) -> None:
    """Bind ``folder`` to the checkpoint file's content; resuming with another file is an error."""
    path = Path(checkpoint)
    if not path.is_file():
        raise OstnetError(f"{path}: checkpoint not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info_file = folder / "checkpoint.json"
    if info_file.is_file():
        stored = json.loads(info_file.read_text(encoding="utf-8"))
        if stored.get("sha256") != digest:
            raise OstnetError(f"{folder}: results of a different checkpoint file than {path}; use another --output")
        return
    with atomic_output(info_file) as tmp:
        tmp.write_text(json.dumps({"path": str(path.resolve()), "sha256": digest}, indent=2), encoding="utf-8")


@dataclass
class CheckpointSummary:
    """One row of the results table: means over the pairs that have each metric, and counts."""

    label: str
    checkpoint: str
    pairs_total: int
    pairs_evaluated: int
    pairs_failed: int
    face_missing: int  # evaluated pairs without face metrics (no face detected in a frame)
    means: dict[str, float | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def summarize(
    label: str,
    checkpoint: str,
    results: Sequence[PairMetrics],
    metric_names: Sequence[str],
    pairs_total: int,
    notes: dict[str, str] | None = None,
) -> CheckpointSummary:
    """Mean of each metric over the pairs where it is defined (+inf PSNR of identical images counts)."""
    ok = [r for r in results if r.status == "ok"]
    means, counts = {}, {}
    for name in metric_names:
        values = [getattr(r, name) for r in ok if getattr(r, name) is not None and not math.isnan(getattr(r, name))]
        counts[name] = len(values)
        means[name] = sum(values) / len(values) if values else None
    face = [n for n in metric_names if n in FACE_METRICS]
    missing = sum(1 for r in ok if face and any(getattr(r, n) is None for n in face))
    failed = len(results) - len(ok)
    return CheckpointSummary(label, checkpoint, pairs_total, len(ok), failed, missing, means, counts, dict(notes or {}))


def _format(summary: CheckpointSummary, name: str) -> str:
    value = summary.means.get(name)
    if value is None:
        return f"n/a ({summary.notes[name].split(' (')[0]})" if name in summary.notes else "n/a"
    return f"{value:.{METRICS[name].digits}f}"


def _markdown(protocol: str, summaries: Sequence[CheckpointSummary], metric_names: Sequence[str]) -> str:
    arrows = [f"{METRICS[n].header} {'↑' if METRICS[n].higher_is_better else '↓'}" for n in metric_names]
    head = ["Checkpoint", *arrows, "Pairs", "Failed", "No face"]
    lines = [f"# Evaluation: {protocol}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [s.label, *(_format(s, n) for n in metric_names)]
        cells += [f"{s.pairs_evaluated}/{s.pairs_total}", str(s.pairs_failed), str(s.face_missing)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Conventions", ""]
    lines += [f"- **{METRICS[n].header}**: {METRICS[n].definition}." for n in metric_names]
    lines.append(
        "- **Pairs**: evaluated / listed; **Failed**: pairs that could not be generated (reasons in "
        "per_pair.csv); **No face**: evaluated pairs where dlib found no face in a frame, left out of the "
        "face metrics."
    )
    notes = {f"{s.label}: {k}: {v}" for s in summaries for k, v in s.notes.items()}
    if notes:
        lines += ["", "## Notes", "", *sorted(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_results(
    out_dir: str | os.PathLike,
    protocol: str,
    summaries: Sequence[CheckpointSummary],
    extra: dict[str, object] | None = None,
) -> list[Path]:
    """Write results.md, results.csv and results.json (atomically) and return their paths."""
    out_dir = Path(out_dir)
    names = metrics_for(protocol)
    md, csv_path, json_path = out_dir / "results.md", out_dir / "results.csv", out_dir / "results.json"
    with atomic_output(md) as tmp:
        tmp.write_text(_markdown(protocol, summaries, names), encoding="utf-8")
    with atomic_output(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        counts = ["pairs_evaluated", "pairs_total", "pairs_failed", "face_missing"]
        writer.writerow(["checkpoint", "path", *names, *counts, "notes"])
        for s in summaries:
            notes = "; ".join(f"{k}: {v}" for k, v in s.notes.items())
            values = [_cell(s.means.get(n)) for n in names]
            writer.writerow([s.label, s.checkpoint, *values, *(getattr(s, c) for c in counts), notes])
    payload = {
        "protocol": protocol,
        "metrics": {n: asdict(METRICS[n]) for n in names},
        "checkpoints": [asdict(s) for s in summaries],
        **(extra or {}),
    }
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=True), encoding="utf-8")
    return [md, csv_path, json_path]


def metric_field_names() -> tuple[str, ...]:
    """Every metric attribute of PairMetrics (for checks that the registry and the dataclass agree)."""
    return tuple(f.name for f in fields(PairMetrics) if f.name in METRICS)


def compose_grid(rows: Sequence[Sequence[np.ndarray | None]], headers: Sequence[str], tile: int = 128) -> np.ndarray:
    """Lay out uint8 (H, W, 3) images as a table with a header row of labels; None leaves a grey tile.

    Every image is resized to ``tile x tile``. Returns the grid as a uint8 (H, W, 3) array.
    """
    from PIL import Image, ImageDraw

    header_h, cols = 18, len(headers)
    canvas = Image.new("RGB", (cols * tile, header_h + len(rows) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(headers):
        draw.text((c * tile + 4, 3), text[: tile // 6], fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            box = (c * tile, header_h + r * tile)
            if image is None:
                canvas.paste((128, 128, 128), (*box, box[0] + tile, box[1] + tile))
            else:
                canvas.paste(Image.fromarray(image).resize((tile, tile), Image.BILINEAR), box)
    return np.asarray(canvas)
