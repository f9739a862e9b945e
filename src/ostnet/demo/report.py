"""The demo report: its typed inputs, the verdict and one self-contained ``report.html``.

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
    FEATURES_NOTES,
    LOSS_CAPTION,
    NOT_BETTER_NOTE,
    PIXEL_NOTES,
    QUICK_NOTE,
    RECTIFICATION_NOTE,
    SETUP_ITEMS,
    TITLE,
    esc,
    page,
    table,
    tag,
)
from ostnet.evaluation.report import METRICS, metrics_for
from ostnet.io import atomic_output

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
    the files written, the augmentation factors (alpha, beta) of the driving video and the frame indices shown
    in the strips."""

    source: np.ndarray
    driving: np.ndarray
    truth: np.ndarray
    rows: tuple[AnimatedRow, ...]
    gif: bytes
    files: tuple[Path, ...]
    driving_factors: tuple[float, float]
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


NO_MOTION_CAUTION = (
    " Caution: both models are still worse than simply copying the source image (SSIM {copy:.4f}, see the "
    "reference row): with this little training they have not learned to transfer motion yet, so this "
    "comparison cannot yet test the paper's claim. A larger --budget (or a GPU) is needed for that."
)


def decide(
    ssim_baseline: float | None,
    ssim_ostnet: float | None,
    diff: PairedDifference | None,
    copy_ssim: float | None = None,
) -> Verdict:
    """The headline sentence about different-scale SSIM (higher is better).

    ``copy_ssim``: SSIM of the "no motion" reference (the source image as the prediction). When neither model
    beats it, a caution is added and a win is downgraded to "unclear".
    """
    if ssim_baseline is None or ssim_ostnet is None:
        return Verdict("bad", "No verdict: the evaluation produced no SSIM for one of the models.")
    numbers = f"SSIM {ssim_ostnet:.4f} vs {ssim_baseline:.4f}"
    if diff is not None:
        numbers += (f" (difference {diff.mean:+.4f} ± {diff.half_width:.4f}, 95% interval over {diff.count} "
                    f"paired pairs; OSTNet better on {diff.wins} of them)")  # fmt: skip
    if ssim_ostnet <= ssim_baseline:
        level, text = "bad", f"OSTNet did NOT beat the Baseline on different-scale SSIM in this run: {numbers}."
    elif diff is not None and diff.mean - diff.half_width <= 0:
        level, text = (
            "unclear",
            f"OSTNet is ahead of the Baseline on different-scale SSIM, but within noise: {numbers}.",
        )
    else:
        level, text = "good", f"OSTNet beats the Baseline on different-scale SSIM: {numbers}."
    if copy_ssim is not None and max(ssim_baseline, ssim_ostnet) < copy_ssim:
        level = "unclear" if level == "good" else level
        text += NO_MOTION_CAUTION.format(copy=copy_ssim)
    return Verdict(level, text)


class Rectification(NamedTuple):
    """OSTNet's ST on its own (Sec. 3.2): mean SSIM to the ground truth of the scaled driving frame ``before``
    and ``after`` rectification, over ``count`` evaluation pairs at 256x256."""

    before: float
    after: float
    count: int


class Reference(NamedTuple):
    """The trivial "no motion" predictor (the source image itself) scored like the models: mean SSIM, PSNR
    and L1 (and LPIPS when its weights are installed) at 256x256 over ``count`` evaluation pairs."""

    ssim: float
    psnr: float
    l1: float
    count: int
    lpips: float | None = None  # None when the LPIPS weights are not installed


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
    overrides: tuple[str, ...] = ()  # the demo's overrides of the tiny preset, shared by both models
    features: str = "RANDOM VGG-19"  # the perceptual loss's VGG (``choose_features``)
    pixel_weight: float = 0.0  # ``loss.pixel_weight`` of both models (not in the paper; 0: no pixel L1 term)
    reference: Reference | None = None
    rectification: Rectification | None = None

    def summary(self, label: str):
        return next((s for s in self.summaries if s.label == label), None)

    @property
    def verdict(self) -> Verdict:
        base, ost = self.summary(BASELINE), self.summary(OSTNET)
        copy = self.reference.ssim if self.reference is not None else None
        ssim_b, ssim_o = (s.means.get("ssim") if s is not None else None for s in (base, ost))
        return decide(ssim_b, ssim_o, self.ssim_difference, copy)


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


# ------------------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------------------


def _metric_table(data: ReportData) -> str:

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
    if data.reference is not None:
        ref = data.reference
        values = {"ssim": f"{ref.ssim:.3f}", "psnr": f"{ref.psnr:.2f}", "l1": f"{ref.l1:.4f}"}
        if ref.lpips is not None:
            values["lpips"] = f"{ref.lpips:.3f}"
        rows.append([("<i>reference: the source copied (no motion)</i>", "name"),
                     *(values.get(n, "—") for n in names), f"{ref.count}", "—"])  # fmt: skip
    notes = sorted({f"{k}: {v}" for s in data.summaries for k, v in s.notes.items()})
    notes.append("No face: pairs where dlib found no face in the prediction or the ground truth; they have no "
                 "AKD, AED or scale error.")  # fmt: skip
    if data.reference is not None:
        notes.append("Reference row: the source frame itself used as the prediction. Source and ground truth "
                     "show the same person at nearly the same size, so a model that transfers motion must beat "
                     "it.")  # fmt: skip
    defs = "<br>".join(f"<b>{esc(METRICS[n].header)}</b>: {esc(METRICS[n].definition)}." for n in names)
    return (
        table(["Model", *heads, "Pairs", "No face"], rows)
        + tag("ul", "".join(tag("li", esc(n)) for n in notes), class_="notes")
        + tag("details", tag("summary", "Metric definitions") + defs)
    )


def _rectification(data: ReportData) -> str:
    r = data.rectification
    if r is None:
        return ""
    text = RECTIFICATION_NOTE.format(before=r.before, after=r.after, count=r.count)
    if r.after <= r.before:
        text += " Here it did not: the rectified frames are no closer to the ground truth than the scaled ones."
    return tag("p", text)


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
        tag("p", ANIMATION_INTRO.format(alpha=a.driving_factors[0], beta=a.driving_factors[1]))
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
    overrides = " ".join(f"<code>{esc(o)}</code>" for o in data.overrides)
    fields = {**p, **p["clips"], "scale_range": tuple(p["scale_range"]), "budget": data.budget_s,
              "pairs": 2 * p["eval_pairs"], "overrides": overrides, "features": esc(data.features),
              "features_note": FEATURES_NOTES[data.features.startswith("ImageNet")],
              "pixel_note": PIXEL_NOTES[data.pixel_weight > 0].format(pixel_weight=data.pixel_weight)}  # fmt: skip
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
        _rectification(data),
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

    text = render_report(data)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
