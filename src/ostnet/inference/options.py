"""The options of the animation commands, declared once (``ostnet.options``): ``AnimateOptions`` (``ostnet
animate``, the web app's Animate tab), ``EditOptions`` (``ostnet edit``, the Edit tab) and ``LiveOptions``
(``ostnet live``). Each dataclass is the command's Python options object; its command-line flags, its web
controls (``web=True``) and its table in docs/cli.md (``python scripts/make_cli_docs.py``) are derived from it.

To add an option: add one ``option(...)`` field with its help text, bounds and group; ``--help``, the web page
and docs/cli.md follow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from ostnet.config import Precision
from ostnet.face.crop import DEFAULT_MARGIN
from ostnet.inference.animator import Mode
from ostnet.inference.controls import (
    ANGLE_LIMIT,
    EDIT_LIMIT,
    SCALE_LIMIT,
    Controls,
    EditArea,
    ExpressionMode,
    parse_pose,
    parse_regions,
)
from ostnet.inference.smoothing import SmoothMethod
from ostnet.options import Device, declared, device_option, nested, option

# ``animate``'s motion modes: the Animator's and best-frame (the pipeline picks the anchor frame)
AnimateMode = Literal["auto", "anchor-free", "relative", "absolute", "best-frame"]
IO, MOTION, CROP, RUN = "inputs and outputs", "motion", "face crop and composition", "execution"
CONTROLS = "pose and expression controls (PECHead checkpoints; other models refuse them)"
MODE_HELP = (
    "motion transfer: anchor-free (OSTNet's per-frame scale transformation, the default for models with it), "
    "relative (FOMM: motion relative to the first driving frame), absolute (driving keypoints as they are), "
    "best-frame (relative to the driving frame whose face matches the source's pose best); "
    "auto = anchor-free for OSTNet checkpoints, relative otherwise"
)
SMOOTH_HELP = (
    "temporal smoothing of the driving motion (keypoints, scale code) against flicker: ema, kalman (constant "
    "velocity), one-euro (steady when still, quick when moving)"
)


def _source() -> Any:
    return option(metavar="IMAGE", help="portrait image (jpg, png, webp, ...)", group=IO, web=False)


def _checkpoint(text: str = "ostnet .safetensors checkpoint") -> Any:
    return option(None, required=True, metavar="CKPT", help=text, group=IO, web=False)


def _no_crop(group: str | None = CROP) -> Any:
    return option(True, flag="--no-crop", help="inputs are already face crops: no face detection", group=group)


def _face_index(group: str | None = CROP) -> Any:
    return option(0, metavar="K", help="face of the source, 0 = largest", bounds=(0, 1000), group=group)


def dtype_option(group: str | None = RUN, web: bool = True) -> Any:
    """``--dtype``: the inference precision (choices: ``ostnet.models.precision.PRECISIONS``)."""
    return option("fp32", help="inference precision (fp32, or autocast to bf16 / fp16)", group=group, web=web)


@declared
class CropOptions:
    """How faces are found and cropped. ``enabled=False`` (``--no-crop``): inputs are already face crops
    (a non-square input is cut to its centred square). Sizes in pixels of the original images."""

    enabled: bool = _no_crop()
    face_index: int = _face_index()
    driving_face_index: int = option(
        0, metavar="K", help="face to follow in the driving video (in its first frame with a face), 0 = largest",
        bounds=(0, 1000), group=CROP,
    )  # fmt: skip
    margin: float = option(
        DEFAULT_MARGIN, metavar="M", help="crop side = (1 + margin) x face size", bounds=(-0.5, 4.0), group=CROP
    )
    min_face: float = option(
        32.0, metavar="PX", help="smallest usable face in pixels", bounds=(1.0, 100000.0), group=CROP
    )
    smooth_sigma: float = option(
        3.0, flag="--smooth", metavar="SIGMA", help="crop smoothing, Gaussian sigma in frames (0 = off)",
        bounds=(0.0, 100.0), group=CROP,
    )  # fmt: skip


def _angle(name: str, limit: float, direction: str) -> Any:
    return option(None, metavar="DEG", help=f"turn the head: {name} offset in degrees ({direction})",
                  bounds=(-limit, limit), group=CONTROLS)  # fmt: skip


def _edit(text: str) -> Any:
    return option(None, metavar="V", help=text, bounds=(-EDIT_LIMIT, EDIT_LIMIT), group=CONTROLS)


@declared
class EditControls:
    """The controls of a still portrait (``ostnet edit``; also part of ``animate``'s ``ControlOptions``): pose
    offsets and expression edits (None: as the recipe, or no change), and the recipe files."""

    yaw: float | None = _angle("yaw", ANGLE_LIMIT, "> 0: to the image's right")
    pitch: float | None = _angle("pitch", ANGLE_LIMIT, "> 0: up")
    roll: float | None = _angle("roll", 2 * ANGLE_LIMIT, "> 0: clockwise")
    mouth_open: float | None = _edit("open (> 0) or close (< 0) the mouth")
    smile: float | None = _edit("widen (> 0) or narrow (< 0) the mouth")
    eyes: float | None = _edit("open (> 0) or close (< 0) both eyes")
    eye_left: float | None = _edit("the subject's left eye only (wink: -1)")
    eye_right: float | None = _edit("the subject's right eye only")
    brows: float | None = _edit("raise (> 0) or lower (< 0) the brows")
    edit_area: EditArea | None = option(
        None, group=CONTROLS,
        help="whole (default, the paper): the edited coefficients re-render the picture; local: the expression "
        "edits above change it only where they move the face (PECHead; beyond the paper)",
    )  # fmt: skip
    recipe: Path | None = option(
        None, metavar="JSON", help="load the controls from an edit recipe (the flags given override it)",
        group=CONTROLS, web=False,
    )  # fmt: skip
    save_recipe: Path | None = option(
        None, metavar="JSON", help="write the controls used as a recipe", group=CONTROLS, web=False
    )

    def resolve(self, **more: Any) -> Controls:
        """The ``Controls``: the recipe (if any) with the given values (and ``more``) on top."""
        base = Controls.load(self.recipe) if self.recipe is not None else Controls()
        names = [f.name for f in dataclasses.fields(Controls)]
        given = {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}
        return dataclasses.replace(base, **given, **more)


@declared
class ControlOptions:
    """The pose and expression controls of a video (``ostnet animate``): where pose and expression come from,
    and the still portrait's ``EditControls``."""

    pose: str | None = option(
        None, metavar="MODE", group=CONTROLS,
        help="relative (default: the driving head's turns since its first frame, added to the source's), "
        "absolute (the driving pose as it is), source (keep the source's pose), fixed:YAW,PITCH,ROLL (degrees)",
    )  # fmt: skip
    expression: ExpressionMode | None = option(
        None, help="expression from the driving video (default), the source's own, or neutral", group=CONTROLS
    )
    expression_scale: float | None = option(
        None, metavar="K", help="strength of the driven expression: 0 = the source's, 1 = as driven (default)",
        bounds=(0.0, SCALE_LIMIT), group=CONTROLS,
    )  # fmt: skip
    regions: str | None = option(
        None, metavar="SPEC", group=CONTROLS,
        help="which parts follow the driving video: all, pose, expression, eyes, mouth, or soft weights "
        "such as mouth=1,eyes=0.5 (groups pose, eyes, brows, mouth; unnamed ones 1)",
    )  # fmt: skip
    pose_from: Path | None = option(
        None, metavar="VIDEO", help="drive the head pose from this video", group=CONTROLS, web=False
    )
    expression_from: Path | None = option(
        None, metavar="VIDEO", help="drive the expression from this video", group=CONTROLS, web=False
    )
    edits: EditControls = nested(EditControls)

    def resolve(self) -> Controls:
        """The ``Controls`` these options describe (the recipe, if any, with the given values on top)."""
        more: dict[str, Any] = {}
        if self.pose is not None:
            more["pose"], more["fixed_pose"] = parse_pose(self.pose)
        if self.expression is not None:
            more["expression"] = self.expression
        if self.expression_scale is not None:
            more["expression_scale"] = self.expression_scale
        if self.regions is not None:
            more["regions"] = parse_regions(self.regions)
        return self.edits.resolve(**more)


@declared
class AnimateOptions:
    """Everything ``animate_video`` needs: the ``ostnet animate`` options (docs/cli.md). ``controls`` is the
    resolved ``Controls`` of ``control``."""

    source: Path = _source()
    driving: Path = option(
        metavar="VIDEO", help="driving video (mp4, mov, webm, mkv, gif) or a folder of frames", group=IO, web=False
    )
    output: Path = option(metavar="OUT", help="output video (.mp4, .mov or .mkv)", group=IO, web=False)
    checkpoint: Path | None = _checkpoint()
    frames_dir: Path | None = option(
        None, flag="--frames", metavar="DIR", help="also write the output frames as PNGs into DIR", group=IO, web=False
    )
    max_frames: int | None = option(
        None, metavar="N", help="animate only the first N driving frames", bounds=(1, None), group=IO
    )
    crf: int = option(18, help="H.264 quality, 0 = lossless, 23 = x264 default", bounds=(0, 51), group=IO)
    mode: AnimateMode = option("auto", help=MODE_HELP, group=MOTION, title="motion mode")
    adapt_scale: bool = option(
        False, help="relative/best-frame: scale the motion by the keypoint hull areas", group=MOTION
    )
    motion_smooth: SmoothMethod = option("none", help=SMOOTH_HELP, group=MOTION, title="motion smoothing")
    crop: CropOptions = nested(CropOptions)
    paste_back: bool = option(False, help="put the animated face back into the full source image", group=CROP)
    side_by_side: bool = option(False, help="write source | driving | result", group=CROP)
    control: ControlOptions = nested(ControlOptions)
    device: Device = device_option(RUN)
    dtype: Precision = dtype_option()
    batch_size: int | None = option(
        None, metavar="N", help="frames per model call (default: sized to the device)", bounds=(1, None), group=RUN,
        web=False,
    )  # fmt: skip
    runtime: Literal["torch", "onnx"] = option(
        "torch", help="torch, or onnx: run an `ostnet export` folder (--onnx-dir) with onnxruntime on the CPU",
        group=RUN, web=False,
    )  # fmt: skip
    onnx_dir: Path | None = option(
        None, metavar="DIR", help="folder made by `ostnet export CKPT --format onnx`", group=RUN, web=False
    )
    progress: bool = option(True, flag="--quiet", help="no progress bar", group=RUN, web=False)

    @property
    def controls(self) -> Controls:
        return self.control.resolve()

    @property
    def pose_from(self) -> Path | None:
        return self.control.pose_from

    @property
    def expression_from(self) -> Path | None:
        return self.control.expression_from


@declared
class EditOptions:
    """The ``ostnet edit`` options: a still portrait, a PECHead checkpoint and the ``EditControls``."""

    source: Path = _source()
    output: Path = option(metavar="OUT", help="output image (.png, .jpg, .webp)", group=IO, web=False)
    checkpoint: Path | None = _checkpoint("a PECHead .safetensors checkpoint")
    crop: bool = _no_crop()
    face_index: int = _face_index()
    paste_back: bool = option(False, help="write the whole portrait with the edited face", group=CROP)
    device: Device = device_option(RUN)
    controls: EditControls = nested(EditControls)


@declared
class LiveOptions:
    """The ``ostnet live`` options: a portrait animated by a camera, a stream or a clip as frames arrive."""

    source: Path = _source()
    camera: str = option(metavar="DEVICE|URL|FILE", help="0, /dev/video0, rtsp://..., clip.mp4", group=IO)
    checkpoint: Path | None = _checkpoint()
    output: Path | None = option(
        None, metavar="OUT", help="also write the animated frames to this video", group=IO, web=False
    )
    window: bool = option(
        True, flag="--no-window", help="never open a window (default: one when a display exists)", group=IO
    )
    crop: bool = _no_crop(MOTION)
    mode: Mode = option("auto", help="motion transfer (see `ostnet animate --help`)", group=MOTION)
    device: Device = device_option(RUN)
    dtype: Precision = dtype_option()
    max_seconds: float | None = option(None, metavar="S", help="stop after S seconds", bounds=(0.01, None), group=RUN)


__all__ = [
    "AnimateMode",
    "AnimateOptions",
    "ControlOptions",
    "CropOptions",
    "EditControls",
    "EditOptions",
    "LiveOptions",
    "dtype_option",
]
