"""Free control of head pose and expression (PECHead models): what ``ostnet animate`` / ``ostnet edit`` and the
web app offer, as one typed, documented dataclass.

A frame's motion is its face coefficients R (``ostnet.face.coefficients``: yaw/pitch/roll in degrees, six
expression values, placement). ``ControlState.apply`` turns the source's R and the drivers' R into the R that
poses the source (``PECHead.pose_keypoints``), in this order:

1. pose: ``relative`` (the source's pose composed with the pose driver's rotation since its first frame, and
   its shift and size change; LivePortrait's relative driving), ``absolute`` (the driver's pose and placement),
   ``source`` (the source's own), ``fixed`` (``fixed_pose``, placed like the source); then the offsets
   ``yaw``/``pitch``/``roll``;
2. expression: ``driving`` (relative to the expression driver's first frame with pose ``relative``, its
   absolute values otherwise), ``source`` or ``neutral``; ``expression_scale`` k scales the change from the
   source's expression (0: the source's, 1: as driven, >1: exaggerated); then the edits ``mouth_open``,
   ``smile``, ``eyes``/``eye_left``/``eye_right``, ``brows`` (added);
3. regions: soft weights per group (pose, eyes, brows, mouth) blend the source's R (0) with the result (1).

``edit_area``: ``whole`` (the slides: the picture is rendered from the edited R) or ``local`` (beyond the slides:
the expression edits of step 2 change the picture only where they move the landmarks; the Animator renders R with
and without them and mixes the two with the support of the landmarks they move, ``local_edit_mask``).

Zero controls (``Controls()``) are plain animation. A model with 2-D keypoints (OSTNet, FOMM) cannot turn a head:
``check_supported`` names the first control it cannot honour.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from ostnet.errors import OstnetError
from ostnet.face.coefficients import NEUTRAL_EXPRESSION
from ostnet.geometry.rotation import euler_angles, rotation_matrix

PoseMode = Literal["relative", "absolute", "source", "fixed"]
ExpressionMode = Literal["driving", "source", "neutral"]
EditArea = Literal["whole", "local"]
EDIT_AREAS = ("whole", "local")
EXPRESSION_EDITS = ("mouth_open", "smile", "eyes", "eye_left", "eye_right", "brows")
# edit_area local: the mask is PECHead.landmark_support, full for a landmark that moved this far (frame units, [-1, 1]).
# 0.04 measured best of 0.01, 0.02, 0.04, 0.08 on validation heads (docs/results.md, "Eye edits").
LOCAL_EDIT_SATURATION = 0.04
LOCAL_EDIT_FLOOR = 0.01  # below it the mask is 0: there the picture is exactly the one without the edits
POSE_MODES = ("relative", "absolute", "source", "fixed")
EXPRESSION_MODES = ("driving", "source", "neutral")
REGION_GROUPS = ("pose", "eyes", "brows", "mouth")
REGION_PRESETS = {
    "all": {"pose": 1.0, "eyes": 1.0, "brows": 1.0, "mouth": 1.0},
    "pose": {"pose": 1.0, "eyes": 0.0, "brows": 0.0, "mouth": 0.0},
    "expression": {"pose": 0.0, "eyes": 1.0, "brows": 1.0, "mouth": 1.0},
    "eyes": {"pose": 0.0, "eyes": 1.0, "brows": 0.0, "mouth": 0.0},
    "mouth": {"pose": 0.0, "eyes": 0.0, "brows": 0.0, "mouth": 1.0},
}
ANGLE_LIMIT = 90.0  # degrees, for offsets and fixed poses (|roll| up to 180)
EDIT_LIMIT = 1.0  # expression edits
SCALE_LIMIT = 3.0  # expression_scale
SMILE_WIDTH = 0.2  # smile = 1 widens the mouth by this factor of its neutral width
# Index sets into the coefficient vector (models/pechead.py layout).
_POSE, _PLACEMENT = slice(0, 3), slice(9, 12)
_GROUP_INDICES = {"pose": [0, 1, 2, 9, 10, 11], "eyes": [5, 6], "brows": [7, 8], "mouth": [3, 4]}


@dataclass(frozen=True)
class Controls:
    """Pose and expression controls (angles in degrees). Every field's default is "no change".

    pose: ``relative`` | ``absolute`` | ``source`` | ``fixed`` (then ``fixed_pose`` = (yaw, pitch, roll)).
    yaw, pitch, roll: offsets added to the pose, in [-90, 90] (roll [-180, 180]).
    expression: ``driving`` | ``source`` | ``neutral``; expression_scale in [0, 3].
    mouth_open, smile, eyes, eye_left, eye_right, brows: expression edits in [-1, 1] (eyes > 0 opens both).
    regions: soft weights in [0, 1] per group (pose, eyes, brows, mouth), or a preset name (all, pose,
        expression, eyes, mouth): how much of the driven motion each part of the face takes.
    edit_area: ``whole`` or ``local`` (the expression edits change the picture only where they move the face).
    """

    pose: PoseMode = "relative"
    fixed_pose: tuple[float, float, float] | None = None
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    expression: ExpressionMode = "driving"
    expression_scale: float = 1.0
    mouth_open: float = 0.0
    smile: float = 0.0
    eyes: float = 0.0
    eye_left: float = 0.0
    eye_right: float = 0.0
    brows: float = 0.0
    regions: dict[str, float] = field(default_factory=lambda: dict(REGION_PRESETS["all"]))
    edit_area: EditArea = "whole"

    def __post_init__(self) -> None:
        if self.edit_area not in EDIT_AREAS:
            raise OstnetError(f"unknown edit area {self.edit_area!r}; choose one of {', '.join(EDIT_AREAS)}")
        if self.pose not in POSE_MODES:
            raise OstnetError(f"unknown pose mode {self.pose!r}; choose one of {', '.join(POSE_MODES)}")
        if self.expression not in EXPRESSION_MODES:
            raise OstnetError(f"unknown expression mode {self.expression!r}; choose {', '.join(EXPRESSION_MODES)}")
        if (self.pose == "fixed") != (self.fixed_pose is not None):
            raise OstnetError("a fixed pose needs its angles: --pose fixed:YAW,PITCH,ROLL (and only then)")
        angles = [("yaw", self.yaw), ("pitch", self.pitch), ("roll", self.roll)]
        if self.fixed_pose is not None:
            if len(self.fixed_pose) != 3:
                raise OstnetError(f"a fixed pose has 3 angles (yaw, pitch, roll), got {len(self.fixed_pose)}")
            angles += [(f"fixed {n}", v) for n, v in zip(("yaw", "pitch", "roll"), self.fixed_pose, strict=True)]
        for name, value in angles:
            limit = 2 * ANGLE_LIMIT if name.endswith("roll") else ANGLE_LIMIT
            _check_range(name, value, -limit, limit, "degrees")
        _check_range("expression scale", self.expression_scale, 0.0, SCALE_LIMIT)
        for name in ("mouth_open", "smile", "eyes", "eye_left", "eye_right", "brows"):
            _check_range(name.replace("_", " "), getattr(self, name), -EDIT_LIMIT, EDIT_LIMIT)
        regions = self.regions
        if isinstance(regions, str):
            if regions not in REGION_PRESETS:
                raise OstnetError(f"unknown region {regions!r}; choose one of {', '.join(REGION_PRESETS)}")
            object.__setattr__(self, "regions", dict(REGION_PRESETS[regions]))
            regions = self.regions
        unknown = set(regions) - set(REGION_GROUPS)
        if unknown:
            raise OstnetError(f"unknown region(s) {', '.join(sorted(unknown))}; known: {', '.join(REGION_GROUPS)}")
        object.__setattr__(self, "regions", {g: float(regions.get(g, 1.0)) for g in REGION_GROUPS})
        for group, weight in self.regions.items():
            _check_range(f"region weight {group}", weight, 0.0, 1.0)

    @property
    def local_edits(self) -> bool:
        """True when expression edits are set and are to change the picture only where they move the face."""
        return self.edit_area == "local" and any(getattr(self, name) for name in EXPRESSION_EDITS)

    @property
    def is_identity(self) -> bool:
        """True when these controls change nothing (plain animation)."""
        return self == Controls()

    def changed(self) -> list[str]:
        """Names of the fields that differ from their defaults (what a model must be able to honour)."""
        default = Controls()
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def to_json(self) -> str:
        """The edit recipe: every field, replayable with ``from_json``."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, origin: str = "recipe") -> Controls:
        """Controls from an edit recipe; unknown keys or bad values are an OstnetError naming them."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OstnetError(f"{origin}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise OstnetError(f"{origin}: an edit recipe is a JSON object of control names and values")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OstnetError(f"{origin}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        if data.get("fixed_pose") is not None:
            data["fixed_pose"] = tuple(data["fixed_pose"])
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise OstnetError(f"{origin}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> Controls:
        path = Path(path)
        if not path.is_file():
            raise OstnetError(f"{path}: edit recipe not found")
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))


def _check_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise OstnetError(f"{name} {value!r} is out of range [{low:g}, {high:g}]{' ' + unit if unit else ''}")


def parse_pose(text: str) -> tuple[str, tuple[float, float, float] | None]:
    """``relative`` | ``absolute`` | ``source`` | ``fixed:YAW,PITCH,ROLL`` -> (mode, fixed angles or None)."""
    if text.startswith("fixed:"):
        try:
            angles = tuple(float(v) for v in text[len("fixed:") :].split(","))
        except ValueError:
            raise OstnetError(f"--pose {text!r}: expected fixed:YAW,PITCH,ROLL in degrees") from None
        if len(angles) != 3:
            raise OstnetError(f"--pose {text!r}: expected three angles, fixed:YAW,PITCH,ROLL")
        return "fixed", angles  # type: ignore[return-value]
    if text not in POSE_MODES or text == "fixed":
        raise OstnetError(f"--pose {text!r}: choose relative, absolute, source or fixed:YAW,PITCH,ROLL")
    return text, None


def parse_regions(text: str) -> dict[str, float] | str:
    """``all`` | ``pose`` | ... or ``GROUP=W,GROUP=W`` (soft weights; unnamed groups keep 1)."""
    if "=" not in text:
        return text
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise OstnetError(f"--regions {text!r}: expected GROUP=WEIGHT pairs, e.g. mouth=1,eyes=0.5") from None
    return out


def local_edit_mask(model, landmarks: Tensor, reference: Tensor, height: int, width: int) -> Tensor:
    """``edit_area`` local: (B, 1, height, width), the weight of the edited picture: the support of the landmarks
    that the edits move from ``reference`` (PECHead's ``landmark_support``), 0 below ``LOCAL_EDIT_FLOOR``."""
    mask = model.landmark_support(landmarks, reference, height, width, LOCAL_EDIT_SATURATION)
    return torch.where(mask < LOCAL_EDIT_FLOOR, torch.zeros_like(mask), mask)


def supported_controls(model) -> frozenset[str]:
    """The Controls fields ``model`` can honour: all of them for PECHead models, none for 2-D keypoint models."""
    return _supported(bool(getattr(model, "controllable", False)))


def _supported(controllable: bool) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(Controls)) if controllable else frozenset()


def check_supported(model, controls: Controls, extra: tuple[str, ...] = ()) -> None:
    """OstnetError naming the first control (or ``extra`` option, e.g. --pose-from) ``model`` cannot honour."""
    check_controls(bool(getattr(model, "controllable", False)), model.cfg.name, controls, extra)


def check_controls(controllable: bool, preset: str, controls: Controls, extra: tuple[str, ...] = ()) -> None:
    """``check_supported`` for a model known by whether it is ``controllable`` and its preset's name (an ONNX
    export's manifest)."""
    wanted = [*controls.changed(), *extra]
    supported = _supported(controllable)
    missing = [name for name in wanted if name not in supported and not name.startswith("--")] + [
        name for name in extra if name.startswith("--") and not supported
    ]
    if missing:
        name = missing[0] if missing[0].startswith("--") else "--" + missing[0].replace("_", "-")
        raise OstnetError(
            f"{name}: model {preset!r} cannot honour it (its 2-D keypoints cannot turn a head or change an "
            "expression by itself); use a PECHead checkpoint (presets pechead-256, pechead-st, tiny-pechead)"
        )


def _compose_relative(source: Tensor, driver: Tensor, first: Tensor) -> Tensor:
    """Pose angles: R_source composed with the driver's rotation since its first frame (R_d R_d0^T R_s)."""
    rot = lambda a: rotation_matrix(a[:, 0], a[:, 1], a[:, 2])  # noqa: E731
    yaw, pitch, roll = euler_angles(rot(driver) @ rot(first).transpose(1, 2) @ rot(source))
    return torch.stack([yaw, pitch, roll], dim=1)


class ControlState:
    """Applies Controls frame after frame; holds the drivers' first-frame coefficients (reset per video)."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self.first_pose: Tensor | None = None
        self.first_expression: Tensor | None = None

    def reset(self) -> None:
        self.first_pose = self.first_expression = None

    def apply(self, source: Tensor, pose_driver: Tensor, expression_driver: Tensor, with_edits: bool = True) -> Tensor:
        """source (1 or B, D), drivers (B, D) coefficient vectors -> (B, D) coefficients posing the source;
        without the expression edits (``mouth_open`` ... ``brows``) unless ``with_edits``."""
        c = self.controls
        b = pose_driver.shape[0]
        src = source.expand(b, -1).float()
        pose_driver, expression_driver = pose_driver.float(), expression_driver.float()
        if self.first_pose is None:
            self.first_pose, self.first_expression = pose_driver[:1].clone(), expression_driver[:1].clone()
        out = src.clone()
        if c.pose == "relative":
            first_pose = self.first_pose[:, _POSE].expand(b, -1)
            out[:, _POSE] = _compose_relative(src[:, _POSE], pose_driver[:, _POSE], first_pose)
            first = self.first_pose[:, _PLACEMENT]
            out[:, 9:11] = src[:, 9:11] + pose_driver[:, 9:11] - first[:, :2]
            out[:, 11] = src[:, 11] * pose_driver[:, 11] / first[:, 2].clamp(min=1e-3)
        elif c.pose == "absolute":
            out[:, _POSE], out[:, _PLACEMENT] = pose_driver[:, _POSE], pose_driver[:, _PLACEMENT]
        elif c.pose == "fixed":
            out[:, _POSE] = torch.tensor(c.fixed_pose, dtype=out.dtype, device=out.device)
        out[:, _POSE] = out[:, _POSE] + torch.tensor([c.yaw, c.pitch, c.roll], dtype=out.dtype, device=out.device)
        out[:, 3:9] = self._expression(src[:, 3:9], expression_driver[:, 3:9], with_edits)
        weights = torch.ones(out.shape[1], dtype=out.dtype, device=out.device)
        for group, weight in c.regions.items():
            weights[_GROUP_INDICES[group]] = weight
        return torch.where(weights == 1, out, src + weights * (out - src))

    def _expression(self, source: Tensor, driver: Tensor, with_edits: bool = True) -> Tensor:
        c = self.controls
        if c.expression == "driving":
            driven = source + driver - self.first_expression[:, 3:9] if c.pose == "relative" else driver
            expression = source + c.expression_scale * (driven - source)
        elif c.expression == "neutral":
            expression = torch.tensor(NEUTRAL_EXPRESSION, dtype=source.dtype, device=source.device).expand_as(source)
        else:
            expression = source
        if not with_edits:
            return expression
        edits = torch.tensor(
            [c.mouth_open, SMILE_WIDTH * c.smile, c.eyes + c.eye_right, c.eyes + c.eye_left, c.brows, c.brows],
            dtype=source.dtype,
            device=source.device,
        )
        return expression + edits
