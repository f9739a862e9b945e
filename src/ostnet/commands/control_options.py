"""The pose and expression control options shared by ``ostnet animate`` and ``ostnet edit`` (declared once).

They map one to one onto ``ostnet.inference.controls.Controls``; ``--recipe FILE`` loads a saved set (the
flags given on the command line then override it) and ``--save-recipe FILE`` writes the set used.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

EDITS = {  # flag -> (Controls field, help)
    "--mouth-open": ("mouth_open", "open (> 0) or close (< 0) the mouth, in [-1, 1]"),
    "--smile": ("smile", "widen (> 0) or narrow (< 0) the mouth, in [-1, 1]"),
    "--eyes": ("eyes", "open (> 0) or close (< 0) both eyes, in [-1, 1]"),
    "--eye-left": ("eye_left", "the subject's left eye only (wink: -1)"),
    "--eye-right": ("eye_right", "the subject's right eye only"),
    "--brows": ("brows", "raise (> 0) or lower (< 0) the brows, in [-1, 1]"),
}


def add_motion_smooth_argument(group, help_prefix: str = "") -> None:
    """``--motion-smooth`` (ostnet.inference.smoothing), for ``animate`` and ``evaluate``."""
    group.add_argument(
        "--motion-smooth",
        choices=("none", "ema", "kalman", "one-euro"),
        default="none",
        help=help_prefix + "temporal smoothing of the driving motion (keypoints, scale code) against flicker: ema, "
        "kalman (constant velocity), one-euro (steady when still, quick when moving); default: none",
    )


def add_control_arguments(parser: argparse.ArgumentParser, video: bool = True) -> None:
    """Declare the control flags on ``parser`` (``video``: also the driving-related ones)."""
    group = parser.add_argument_group("pose and expression controls (PECHead checkpoints; other models refuse them)")
    if video:
        group.add_argument(
            "--pose", metavar="MODE", default=None,
            help="relative (default: the driving head's turns since its first frame, added to the source's), "
            "absolute (the driving pose as it is), source (keep the source's pose), fixed:YAW,PITCH,ROLL (degrees)",
        )  # fmt: skip
        group.add_argument(
            "--expression", choices=("driving", "source", "neutral"), default=None,
            help="expression from the driving video (default), the source's own, or neutral",
        )  # fmt: skip
        group.add_argument(
            "--expression-scale", metavar="K", type=float, default=None,
            help="strength of the driven expression: 0 = the source's, 1 = as driven (default), up to 3",
        )  # fmt: skip
        group.add_argument(
            "--regions", metavar="SPEC", default=None,
            help="which parts follow the driving video: all, pose, expression, eyes, mouth, or soft weights "
            "such as mouth=1,eyes=0.5 (groups pose, eyes, brows, mouth; unnamed ones 1)",
        )  # fmt: skip
        group.add_argument("--pose-from", metavar="VIDEO", type=Path, help="drive the head pose from this video")
        group.add_argument("--expression-from", metavar="VIDEO", type=Path, help="drive the expression from this video")
    for angle in ("yaw", "pitch", "roll"):
        group.add_argument(
            f"--{angle}", metavar="DEG", type=float, default=None,
            help=f"turn the head: {angle} offset in degrees"
            + {"yaw": " (> 0: to the image's right)", "pitch": " (> 0: up)", "roll": " (> 0: clockwise)"}[angle],
        )  # fmt: skip
    for flag, (_, text) in EDITS.items():
        group.add_argument(flag, metavar="V", type=float, default=None, help=text)
    group.add_argument("--recipe", metavar="JSON", type=Path, help="load the controls from an edit recipe")
    group.add_argument("--save-recipe", metavar="JSON", type=Path, help="write the controls used as a recipe")


def controls_from_args(args: argparse.Namespace):
    """The ``Controls`` of parsed arguments: the recipe (if any) with the given flags on top."""
    from ostnet.inference.controls import Controls, parse_pose, parse_regions

    base = Controls.load(args.recipe) if getattr(args, "recipe", None) else Controls()
    changes: dict = {}
    if getattr(args, "pose", None) is not None:
        changes["pose"], changes["fixed_pose"] = parse_pose(args.pose)
    for name in ("expression", "expression_scale", "yaw", "pitch", "roll"):
        if getattr(args, name, None) is not None:
            changes[name] = getattr(args, name)
    if getattr(args, "regions", None) is not None:
        changes["regions"] = parse_regions(args.regions)
    for field_name, _ in EDITS.values():
        if getattr(args, field_name, None) is not None:
            changes[field_name] = getattr(args, field_name)
    return dataclasses.replace(base, **changes)


def save_recipe(args: argparse.Namespace, controls) -> None:
    """Write ``--save-recipe`` atomically (nothing when not asked for)."""
    if getattr(args, "save_recipe", None) is None:
        return
    from ostnet.io.atomic import atomic_write

    atomic_write(args.save_recipe, lambda tmp: Path(tmp).write_text(controls.to_json() + "\n", encoding="utf-8"))
