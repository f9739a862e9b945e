"""The demo report: its typed inputs, the verdict, the loss plot and one self-contained ``report.html``.

Every picture is embedded as a base64 ``data:`` URI (PNG, or GIF for the animation), so the file opens in a
browser without network access and can be mailed on its own. The verdict never hides a loss: when OSTNet is
not better than the Baseline on different-scale SSIM, the page says so in its first box.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ostnet.demo.template import (
    ANIMATION_INTRO,
    EXAMPLES_INTRO,
    LOSS_CAPTION,
    NOT_BETTER_NOTE,
    QUICK_NOTE,
    SETUP_ITEMS,
    TITLE,
    esc,
    page,
    table,
    tag,
)

PROTOCOL = "different-scale"
BASELINE, OSTNET = "Baseline", "OSTNet"


@dataclass(frozen=True)
class TrainedModel:
    """One trained demo model: table label, model name, weights, run folder, optimiser steps and seconds."""

    label: str
    preset: str
    weights: Path
    run_dir: Path
    steps: int
    seconds: float
    scale_transform: bool = False  # ST (Sec. 3.2)
    scale_embedding: bool = False  # SE (Sec. 3.3)


class ModelImage(NamedTuple):
    """A model's result for one example: uint8 (64, 64, 3) and its SSIM from the evaluation (None: failed)."""

    label: str
    image: np.ndarray
    ssim: float | None


@dataclass(frozen=True)
class ExamplePair:
    """An evaluated different-scale pair; images uint8 (64, 64, 3). ``driving`` is the scaled frame fed to the
    models, ``truth`` the original driving frame, ``rectified`` OSTNet's ST output (None without ST)."""

    pair_id: int
    alpha: float
    beta: float
    source: np.ndarray
    driving: np.ndarray
    rectified: np.ndarray | None
    truth: np.ndarray
    outputs: tuple[ModelImage, ...]


class AnimatedRow(NamedTuple):
    """One animated sequence: frames uint8 (N, 64, 64, 3) and mean SSIM / L1 against the ground truth."""

    label: str
    mode: str
    frames: np.ndarray
    ssim: float
    l1: float


@dataclass(frozen=True)
class AnimationResult:
    """The animation: source (64, 64, 3), driving and truth (N, 64, 64, 3), one row per model/mode, the GIF,
    the files written, the driving/source face-size ratio and the frame indices shown in the strips."""

    source: np.ndarray
    driving: np.ndarray
    truth: np.ndarray
    rows: tuple[AnimatedRow, ...]
    gif: bytes
    files: tuple[Path, ...]
    scale_ratio: float
    shown: tuple[int, ...]


@dataclass(frozen=True)
class PairedDifference:
    """OSTNet minus Baseline SSIM over the pairs both evaluated: mean, 95% half-width (normal approximation
    of the paired mean), the pair count and how many pairs OSTNet won."""

    mean: float
    half_width: float
    count: int
    wins: int


class Verdict(NamedTuple):
    """``level``: "good" (better, interval above zero), "unclear" (better within noise) or "bad"."""

    level: str
    text: str


def paired_difference(baseline: dict[int, float], ostnet: dict[int, float]) -> PairedDifference | None:
    """Per-pair SSIM dicts (pair id -> SSIM) -> the paired difference, or None without common pairs."""
    common = sorted(set(baseline) & set(ostnet))
    if not common:
        return None
    diff = np.array([ostnet[k] - baseline[k] for k in common], dtype=np.float64)
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
    return PairedDifference(float(diff.mean()), float(half), len(diff), int((diff > 0).sum()))


def decide(ssim_baseline: float | None, ssim_ostnet: float | None, diff: PairedDifference | None) -> Verdict:
    """The headline sentence about different-scale SSIM (higher is better)."""
    if ssim_baseline is None or ssim_ostnet is None:
        return Verdict("bad", "No verdict: the evaluation produced no SSIM for one of the models.")
    numbers = f"SSIM {ssim_ostnet:.4f} vs {ssim_baseline:.4f}"
    spread = ""
    if diff is not None:
        spread = (f" (difference {diff.mean:+.4f} ± {diff.half_width:.4f}, 95% interval over {diff.count} paired "
                  f"pairs; OSTNet better on {diff.wins} of them)")  # fmt: skip
    if ssim_ostnet <= ssim_baseline:
        return Verdict(
            "bad", f"OSTNet did NOT beat the Baseline on different-scale SSIM in this run: {numbers}{spread}."
        )
    if diff is not None and diff.mean - diff.half_width <= 0:
        return Verdict("unclear", f"OSTNet is ahead of the Baseline on different-scale SSIM, but within noise: "
                                  f"{numbers}{spread}.")  # fmt: skip
    return Verdict("good", f"OSTNet beats the Baseline on different-scale SSIM: {numbers}{spread}.")


@dataclass
class ReportData:
    """Everything the report shows. ``summaries``: CheckpointSummary rows of the evaluation harness."""

    command: str
    quick: bool
    machine: str
    budget_s: float
    plan: dict
    models: list[TrainedModel]
    summaries: list
    ssim_difference: PairedDifference | None
    loss_png: bytes
    examples: list[ExamplePair]
    animation: AnimationResult
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    perceptual_scales: tuple[float, ...] = ()
    learning_rate: float = 0.0

    def summary(self, label: str):
        return next((s for s in self.summaries if s.label == label), None)

    @property
    def verdict(self) -> Verdict:
        base, ost = self.summary(BASELINE), self.summary(OSTNET)
        return decide(base and base.means.get("ssim"), ost and ost.means.get("ssim"), self.ssim_difference)


# ------------------------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------------------------


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG file bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img(image: np.ndarray | bytes, css: str = "px tile", alt: str = "", mime: str = "image/png") -> str:
    """An <img> with the picture embedded (an array is PNG-encoded first)."""
    data = png_bytes(image) if isinstance(image, np.ndarray) else image
    return f'<img class="{css}" alt="{esc(alt)}" src="{data_uri(data, mime)}">'


def read_scalars(run_dir: Path, tag_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one TensorBoard scalar the trainer logged; empty arrays when it has none."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    if tag_name not in acc.Tags().get("scalars", []):
        return np.zeros(0), np.zeros(0)
    events = acc.Scalars(tag_name)
    return np.array([e.step for e in events]), np.array([e.value for e in events])


def loss_curves_png(models: list[TrainedModel]) -> bytes:
    """Training-loss curves of the models as a PNG: L_rec^D (shared by both) and the total objective.

    Uses matplotlib's Agg canvas directly (chosen here, not at import; the global backend is not touched).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    panels = (("loss/rec_driving", "L_rec^D: prediction vs ground truth (both models)"),
              ("loss/total", "total objective (OSTNet's adds L_rec of the rectified frame)"))  # fmt: skip
    for i, (name, title) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        for model in models:
            steps, values = read_scalars(model.run_dir, name)
            if len(steps):
                ax.plot(
                    steps, values, marker="." if len(steps) < 30 else None, label=f"{model.label} ({model.steps} steps)"
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------------------


def _metric_table(data: ReportData) -> str:
    from ostnet.evaluation.report import METRICS, metrics_for

    names = metrics_for(PROTOCOL)
    heads = [f"{METRICS[n].header} {'↑' if METRICS[n].higher_is_better else '↓'}" for n in names]
    best = {}
    for n in names:
        values = [s.means.get(n) for s in data.summaries if s.means.get(n) is not None]
        if len(values) == len(data.summaries) and len(set(values)) > 1:
            best[n] = max(values) if METRICS[n].higher_is_better else min(values)
    rows = []
    for s in data.summaries:
        cells = [(esc(s.label), "name")]
        for n in names:
            value = s.means.get(n)
            text = f"{value:.{METRICS[n].digits}f}" if value is not None else "n/a"
            cells.append((text, "best" if value is not None and value == best.get(n) else ""))
        rows.append([*cells, f"{s.pairs_evaluated}/{s.pairs_total}", str(s.face_missing)])
    notes = sorted({f"{k}: {v}" for s in data.summaries for k, v in s.notes.items()})
    notes.append("No face: pairs where dlib found no face in the prediction or the ground truth; they have no "
                 "AKD, AED or scale error.")  # fmt: skip
    defs = "<br>".join(f"<b>{esc(METRICS[n].header)}</b>: {esc(METRICS[n].definition)}." for n in names)
    return (
        table(["Model", *heads, "Pairs", "No face"], rows)
        + tag("ul", "".join(tag("li", esc(n)) for n in notes), class_="notes")
        + tag("details", tag("summary", "Metric definitions") + defs)
    )


def _examples(data: ReportData) -> str:
    if not data.examples:
        return tag("p", "No example pair could be read.")
    labels = [o.label for o in data.examples[0].outputs]
    rows = []
    for ex in data.examples:
        factors = f"α={ex.alpha:.2f}, β={ex.beta:.2f} (face ×{math.sqrt(ex.alpha * ex.beta):.2f})"
        rectified = img(ex.rectified, alt="rectified") if ex.rectified is not None else "—"
        cells = [img(ex.source, alt="source"), img(ex.driving, alt="driving") + _caption(factors), rectified,
                 img(ex.truth, alt="ground truth")]  # fmt: skip
        for out in ex.outputs:
            cells.append(
                img(out.image, alt=out.label) + _caption("SSIM n/a" if out.ssim is None else f"SSIM {out.ssim:.3f}")
            )
        rows.append(cells)
    return table(["source", "driving (scaled)", "rectified by OSTNet's ST", "ground truth", *labels], rows)


def _caption(text: str) -> str:
    return tag("div", esc(text), class_="caption")


def _strip(frames: np.ndarray, shown: tuple[int, ...]) -> str:
    """An <img> of the frames ``shown`` side by side."""
    return img(np.concatenate([frames[t] for t in shown], axis=1), css="px strip", alt="frames")


def _animation(data: ReportData) -> str:
    a = data.animation
    files = ", ".join(tag("a", esc(p.name), href=f"{p.parent.name}/{p.name}") for p in a.files)
    gif = img(a.gif, css="anim", alt="animated comparison", mime="image/gif")
    figure = tag("figure", gif + tag("figcaption", f"Animated comparison (also saved as {files})."))
    rows = [[("driving", "name"), _strip(a.driving, a.shown), "", "", ""],
            [("ground truth", "name"), _strip(a.truth, a.shown), "", "", ""]]  # fmt: skip
    rows += [[(esc(r.label), "name"), _strip(r.frames, a.shown), esc(r.mode), f"{r.ssim:.4f}", f"{r.l1:.4f}"]
             for r in a.rows]  # fmt: skip
    frames = f"frames {', '.join(map(str, a.shown))}"
    return (
        tag("p", ANIMATION_INTRO.format(ratio=a.scale_ratio))
        + figure
        + table(["", frames, "mode", "SSIM ↑", "L1 ↓"], rows)
    )


def _training(data: ReportData) -> str:
    rows = []
    for m in data.models:
        st, se = ("yes" if flag else "no" for flag in (m.scale_transform, m.scale_embedding))
        rate = m.steps / m.seconds if m.seconds > 0 else 0.0
        rows.append([(esc(m.label), "name"), esc(m.preset), st, se, str(m.steps), f"{m.seconds:.0f}", f"{rate:.2f}"])
    plot = img(data.loss_png, css="plot", alt="training loss curves")
    heads = ["Model", "model config", "ST", "SE", "steps", "seconds", "steps/s"]
    return table(heads, rows) + tag("figure", plot + tag("figcaption", LOSS_CAPTION))


def _setup(data: ReportData) -> str:
    p = data.plan
    fields = {**p, "scale_range": tuple(p["scale_range"]), "budget": data.budget_s, "pairs": 2 * p["eval_pairs"],
              "scales": ", ".join(map(str, data.perceptual_scales)), "lr": data.learning_rate}  # fmt: skip
    items = [item.format(**fields) for item in SETUP_ITEMS] + [esc(n) for n in data.notes]
    return tag("ul", "".join(tag("li", i) for i in items), class_="notes")


def render_report(data: ReportData) -> str:
    """The whole report as one HTML string (no external resources)."""
    verdict = data.verdict
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = f"<code>{esc(data.command)}</code> · {when} · {esc(data.machine)} · total {data.seconds / 60:.1f} min"
    advice = tag("p", NOT_BETTER_NOTE) if verdict.level != "good" else ""
    parts = [
        tag("h1", esc(TITLE)),
        tag("p", meta, class_="meta"),
        tag("p", QUICK_NOTE, class_="quick") if data.quick else "",
        tag("div", esc(verdict.text) + advice, class_=f"verdict {verdict.level}"),
        tag("h2", "Different-scale evaluation (held-out identities)"),
        _metric_table(data),
        tag("h2", "Examples"),
        tag("p", EXAMPLES_INTRO),
        _examples(data),
        tag("h2", "Animation"),
        _animation(data),
        tag("h2", "Training"),
        _training(data),
        tag("h2", "How this run was set up"),
        _setup(data),
    ]
    return page(TITLE, "\n".join(parts))


def write_report(path: Path, data: ReportData) -> Path:
    """Write ``render_report(data)`` to ``path`` atomically (a temporary file renamed at the end)."""
    from ostnet.io import atomic_output

    text = render_report(data)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
