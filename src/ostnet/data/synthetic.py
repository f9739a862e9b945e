"""Procedurally drawn talking heads with known scale, for tests, sanity training and the ST check.

Each frame is drawn with PIL from four parameter groups: ``Identity`` (colours, face shape, eye spacing,
nose, mouth), ``Expression`` (mouth opening and width, eye openness, brows), ``Pose`` (yaw, roll and
translation, drawn in 2-D with a little depth for yaw) and ``scale`` (face size relative to the frame).
``sample_sequence`` makes smooth clips (speech-like mouth motion, blinks, head motion), deterministic by seed.
``write_synthetic_dataset`` writes them in the FOMM layout (reference-architecture.md §7.1) with the true
per-frame scale and face centre in ``synthetic.json``.

Local face coordinates: origin at the face centre, x right, y down, the face oval's half-height is 1.
A frame's face centre is (x, y) in [-1, 1] (pixel centres, align_corners=True); at ``scale`` s the face oval
(crown to chin) is ``FACE_FRACTION * s`` of the frame height.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ostnet.errors import OstnetError
from ostnet.face.coefficients import FaceCoefficients, save_clip_coefficients
from ostnet.io.atomic import AtomicFolder
from ostnet.options import declared, option

FACE_FRACTION = 0.55  # face oval height / frame height at scale 1
FPS = 25.0  # nominal frame rate of the sampled motion

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """Appearance that stays fixed for a person. Lengths are in face half-heights."""

    skin: Color
    hair: Color
    background: Color
    shirt: Color
    iris: Color
    lips: Color
    face_aspect: float  # face half-width / half-height
    jaw: float  # 0 round chin .. 1 narrow chin
    eye_spacing: float  # eye centre distance from the midline, as a fraction of the half-width
    eye_size: float
    nose_length: float
    nose_width: float
    mouth_width: float  # half-width of the closed mouth, fraction of the face half-width
    hair_volume: float
    hair_length: float  # how far down the back hair reaches (-0.3 short .. 1.0 long)
    fringe: float  # y of the fringe's lower edge (-0.8 high forehead .. -0.45 low)
    pattern_seed: int = 0  # seed of the person's shading pattern (``render_head(texture=...)``)


@dataclass(frozen=True)
class Expression:
    """mouth_open, eye_open in [0, 1] (0 = closed); mouth_width a factor ~[0.8, 1.15]; brow_raise [-1, 1]."""

    mouth_open: float = 0.0
    mouth_width: float = 1.0
    eye_open: float = 1.0
    brow_raise: float = 0.0


@dataclass(frozen=True)
class Pose:
    """yaw, roll in radians; (x, y) the face centre in [-1, 1] frame coordinates."""

    yaw: float = 0.0
    roll: float = 0.0
    x: float = 0.0
    y: float = 0.0


@dataclass(frozen=True)
class HeadParams:
    """One frame: who, what expression, which pose, and how large (face height = FACE_FRACTION * scale).

    ``camera``: the camera's pan (x, y) in normalised frame units; the whole picture, background included,
    moves by it, so the face appears at ``pose + camera``.
    """

    identity: Identity
    expression: Expression
    pose: Pose
    scale: float
    camera: tuple[float, float] = (0.0, 0.0)


def _color(rng: np.random.Generator, low: tuple[int, ...], high: tuple[int, ...]) -> Color:
    r, g, b = (int(rng.integers(lo, hi + 1)) for lo, hi in zip(low, high, strict=True))
    return (r, g, b)


_HAIR_PALETTE = ((20, 15, 12), (70, 45, 25), (120, 80, 45), (200, 160, 90), (150, 60, 25), (160, 160, 160))


def _hair_color(rng: np.random.Generator) -> Color:
    """A natural hair colour: a palette entry (black, browns, blond, red, grey), slightly varied."""
    base = np.asarray(_HAIR_PALETTE[int(rng.integers(len(_HAIR_PALETTE)))], dtype=np.float64)
    r, g, b = (int(c) for c in np.clip(base * rng.uniform(0.85, 1.15), 0, 255))
    return (r, g, b)


def sample_identity(identity_seed: int) -> Identity:
    """A random but fixed person for ``identity_seed`` (same seed -> same person)."""
    rng = np.random.default_rng([identity_seed, 7919])
    tone = rng.uniform(0.0, 1.0)  # dark .. light skin
    skin = tuple(int(c) for c in np.array([95, 60, 40]) + tone * np.array([150, 150, 135]))
    return Identity(
        skin=(skin[0], skin[1], skin[2]),
        hair=_hair_color(rng),
        background=_color(rng, (40, 40, 40), (230, 230, 230)),
        shirt=_color(rng, (20, 20, 20), (230, 230, 230)),
        iris=_color(rng, (30, 30, 20), (110, 140, 170)),
        lips=_color(rng, (140, 50, 50), (210, 110, 110)),
        face_aspect=float(rng.uniform(0.68, 0.84)),
        jaw=float(rng.uniform(0.0, 1.0)),
        eye_spacing=float(rng.uniform(0.36, 0.48)),
        eye_size=float(rng.uniform(0.11, 0.16)),
        nose_length=float(rng.uniform(0.22, 0.36)),
        nose_width=float(rng.uniform(0.09, 0.16)),
        mouth_width=float(rng.uniform(0.3, 0.42)),
        hair_volume=float(rng.uniform(0.06, 0.25)),
        hair_length=float(rng.uniform(-0.3, 1.0)),
        fringe=float(rng.uniform(-0.8, -0.45)),
        pattern_seed=int(rng.integers(2**31)),
    )


def _wave(rng: np.random.Generator, t: np.ndarray, amplitude: float, freq: tuple[float, float]) -> np.ndarray:
    """Sum of two random sinusoids (frequencies in Hz at FPS), peak amplitude ~``amplitude``."""
    out = np.zeros_like(t)
    for _ in range(2):
        f = rng.uniform(*freq)
        out += 0.5 * amplitude * np.sin(2 * math.pi * f * t / FPS + rng.uniform(0, 2 * math.pi))
    return out


def _blinks(rng: np.random.Generator, t: np.ndarray, rate: float = 1.0) -> np.ndarray:
    """Eye openness in [0, 1] with blinks (~5 frames each) every 0.8-3 s, ``rate`` times as often (1 = plain;
    the same draws, each gap divided by ``rate``)."""
    closure = np.zeros_like(t)
    start = rng.uniform(-10.0, 40.0) / rate
    while start < t[-1] + 5:
        closure = np.maximum(closure, np.exp(-(((t - start) / 1.3) ** 2)))
        start += rng.uniform(20.0, 75.0) / rate
    return 1.0 - closure


@dataclass(frozen=True)
class ClipStyle:
    """How a synthetic clip looks and moves: ``motion`` (head-motion factor), ``camera`` (camera-pan
    amplitude) of ``sample_sequence`` and ``texture`` (shading-pattern strength) of ``render_head``."""

    motion: float = 1.0
    camera: float = 0.0
    texture: float = 0.0


MAX_YAW, MAX_ROLL, MAX_OFFSET = 0.9, 0.4, 0.35  # limits of the head pose at large ``motion``
CAMERA_FREQUENCY = (0.35, 0.9)  # Hz of the camera pan's two sinusoids (about one sweep per 40-frame clip)


def sample_sequence(
    identity_seed: int,
    num_frames: int,
    *,
    scale: float,
    rng: np.random.Generator,
    motion: float = 1.0,
    camera: float = 0.0,
    blink_rate: float = 1.0,
) -> list[HeadParams]:
    """A smooth clip of ``num_frames`` frames of the person ``identity_seed`` at base ``scale``.

    The mouth moves like speech (3-5 Hz syllables under a slow envelope), the eyes blink, the head yaws
    (<= ~0.35 rad), rolls (<= ~0.1 rad), drifts (<= ~0.06 in normalised units) and the scale breathes by
    <= ~4 %. ``motion`` (>= 0, default 1) multiplies the head motion: the yaw, roll and drift amplitudes
    and the speed of the head's waves (so that short clips also move), clipped to |yaw| <= MAX_YAW,
    |roll| <= MAX_ROLL and a face centre within MAX_OFFSET of the frame centre; the scale breathing is not
    changed (scale belongs to the dataset's ``scale_range``). ``rng`` drives all motion, so the same rng
    state gives the same clip; ``motion=1`` gives exactly the clips of the plain call.

    ``camera`` (>= 0, default 0) is the amplitude of a camera pan in normalised frame units (x; y gets 0.6 of
    it): the whole picture, background included, sweeps to and fro, as with a hand-held camera. Its draws
    come after all others, so a clip with ``camera=0`` is the clip without a pan.

    ``blink_rate`` (> 0, default 1) multiplies how often the eyes blink; 1 gives exactly the plain clips.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not motion >= 0.0:
        raise ValueError(f"motion must be >= 0, got {motion}")
    if not camera >= 0.0:
        raise ValueError(f"camera must be >= 0, got {camera}")
    if not blink_rate > 0.0:
        raise ValueError(f"blink_rate must be > 0, got {blink_rate}")
    identity = sample_identity(identity_seed)
    t = np.arange(num_frames, dtype=np.float64)
    syllables = 0.5 - 0.5 * np.cos(2 * math.pi * rng.uniform(3.0, 5.0) * t / FPS + rng.uniform(0, 6.3))
    envelope = np.clip(0.55 + _wave(rng, t, 1.0, (0.2, 0.6)), 0.0, 1.0)
    mouth_open = np.clip(syllables * envelope * rng.uniform(0.6, 1.0), 0.0, 1.0)
    mouth_width = 1.0 + _wave(rng, t, 0.12, (0.2, 0.8)) - 0.12 * mouth_open
    eye_open = _blinks(rng, t, blink_rate) * rng.uniform(0.8, 1.0)
    brow = np.clip(_wave(rng, t, 0.8, (0.1, 0.6)), -1.0, 1.0)
    head_t = t * max(1.0, motion)  # faster head waves at large motion (identical at motion <= 1)
    yaw = np.clip(motion * _wave(rng, head_t, rng.uniform(0.1, 0.35), (0.1, 0.5)), -MAX_YAW, MAX_YAW)
    roll = np.clip(motion * _wave(rng, head_t, rng.uniform(0.03, 0.1), (0.1, 0.4)), -MAX_ROLL, MAX_ROLL)
    x = motion * (rng.uniform(-0.06, 0.06) + _wave(rng, head_t, 0.04, (0.05, 0.3)))
    y = motion * (rng.uniform(-0.04, 0.06) + _wave(rng, head_t, 0.03, (0.05, 0.3)))
    x, y = np.clip(x, -MAX_OFFSET, MAX_OFFSET), np.clip(y, -MAX_OFFSET, MAX_OFFSET)
    scales = scale * (1.0 + _wave(rng, t, 0.04, (0.03, 0.2)))
    pan = np.zeros((2, num_frames))
    if camera > 0:
        pan = np.stack([_wave(rng, t, camera, CAMERA_FREQUENCY), _wave(rng, t, 0.6 * camera, CAMERA_FREQUENCY)])
    return [
        HeadParams(
            identity,
            Expression(float(mouth_open[i]), float(mouth_width[i]), float(eye_open[i]), float(brow[i])),
            Pose(float(yaw[i]), float(roll[i]), float(x[i]), float(y[i])),
            float(scales[i]),
            (float(pan[0, i]), float(pan[1, i])),
        )
        for i in range(num_frames)
    ]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> np.ndarray:
    theta = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(theta), cy + ry * np.sin(theta)], axis=1)


def _shade(color: Color, factor: float) -> Color:
    r, g, b = (int(min(255, max(0, round(c * factor)))) for c in color)
    return (r, g, b)


class _Painter:
    """Projects local face coordinates to the (supersampled) canvas and draws polygons there."""

    def __init__(self, params: HeadParams, canvas_size: int, draw: ImageDraw.ImageDraw | None) -> None:
        self.draw = draw
        self.aspect = params.identity.face_aspect
        self.cos_yaw, self.sin_yaw = math.cos(params.pose.yaw), math.sin(params.pose.yaw)
        self.cos_roll, self.sin_roll = math.cos(params.pose.roll), math.sin(params.pose.roll)
        self.radius = 0.5 * FACE_FRACTION * params.scale * canvas_size  # face half-height in pixels
        self.cx = (params.pose.x + params.camera[0] + 1.0) * 0.5 * canvas_size - 0.5
        self.cy = (params.pose.y + params.camera[1] + 1.0) * 0.5 * canvas_size - 0.5

    def project(self, points: np.ndarray, depth: float | None) -> list[tuple[float, float]]:
        """(N, 2) local points -> canvas pixels. ``depth`` None: silhouette (no yaw foreshortening);
        otherwise the point sits on the head ellipsoid plus ``depth`` and turns with the yaw."""
        x, y = points[:, 0], points[:, 1]
        if depth is None:
            x = x - 0.1 * self.sin_yaw
        else:
            z = self.aspect * np.sqrt(np.clip(1.0 - (x / self.aspect) ** 2 - y**2, 0.0, 1.0)) + depth
            x = x * self.cos_yaw + z * self.sin_yaw
        px = self.cx + self.radius * (self.cos_roll * x - self.sin_roll * y)
        py = self.cy + self.radius * (self.sin_roll * x + self.cos_roll * y)
        return list(zip(px.tolist(), py.tolist(), strict=True))

    def polygon(self, points: np.ndarray, fill: Color, depth: float | None = 0.0) -> None:
        self.draw.polygon(self.project(points, depth), fill=fill)

    def line(self, points: np.ndarray, fill: Color, width: float, depth: float | None = 0.0) -> None:
        self.draw.line(self.project(points, depth), fill=fill, width=max(1, round(width * self.radius)))


def _face_outline(ident: Identity, shrink: float = 1.0) -> np.ndarray:
    theta = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
    lower = np.clip(np.sin(theta), 0.0, None)  # 0 above the middle, 1 at the chin
    x = shrink * ident.face_aspect * np.cos(theta) * (1.0 - 0.3 * ident.jaw * lower**2)
    return np.stack([x, shrink * np.sin(theta)], axis=1)


def _draw_body_and_hair(p: _Painter, ident: Identity) -> None:
    a = ident.face_aspect
    p.polygon(_ellipse(0.0, 2.35, 2.3 * a, 1.0), ident.shirt, None)
    neck = np.array([[-0.38 * a, 0.4], [0.38 * a, 0.4], [0.42 * a, 1.6], [-0.42 * a, 1.6]])
    p.polygon(neck, _shade(ident.skin, 0.8), None)
    back = _ellipse(0.0, -0.12, a + ident.hair_volume, 1.0 + ident.hair_volume, 48)
    back[:, 1] = np.minimum(back[:, 1], ident.hair_length)
    p.polygon(back, ident.hair, None)
    for side in (-1.0, 1.0):
        p.polygon(_ellipse(side * 0.98 * a, 0.08, 0.13, 0.2, 16), _shade(ident.skin, 0.9), None)


def _draw_face(p: _Painter, ident: Identity) -> None:
    p.polygon(_face_outline(ident), _shade(ident.skin, 0.85), None)
    p.polygon(_face_outline(ident, 0.93) + np.array([0.02, -0.03]), ident.skin, None)
    theta = np.linspace(math.pi, 2 * math.pi, 25)  # upper half of the oval
    top = np.stack([ident.face_aspect * 1.02 * np.cos(theta), 1.02 * np.sin(theta)], axis=1)
    top = top[top[:, 1] <= ident.fringe]
    edge_x = np.linspace(top[-1, 0], top[0, 0], 9)
    edge_y = ident.fringe + 0.06 * np.abs(np.sin(edge_x * 9.0))
    p.polygon(np.concatenate([top, np.stack([edge_x, edge_y], axis=1)]), ident.hair, 0.02)


def _draw_eyes(p: _Painter, ident: Identity, expr: Expression) -> None:
    size = ident.eye_size
    dark = _shade(ident.skin, 0.45)
    for side in (-1.0, 1.0):
        cx, cy = side * ident.eye_spacing * ident.face_aspect, -0.12
        half_h = 0.7 * size * expr.eye_open
        brow_y = cy - 1.6 * size - 0.09 * expr.brow_raise
        brow = np.array([[cx - 1.5 * size, brow_y + 0.03], [cx + 1.5 * size, brow_y + 0.03 - side * 0.03]])
        p.line(brow, _shade(ident.hair, 0.7), 0.055)
        if half_h < 0.12 * size:
            p.line(np.array([[cx - 1.2 * size, cy], [cx + 1.2 * size, cy]]), dark, 0.025)
            continue
        p.polygon(_ellipse(cx, cy, 1.25 * size, half_h, 24), (245, 245, 240))
        iris_r = 0.6 * size
        gaze = 0.3 * size * p.sin_yaw
        p.polygon(_ellipse(cx + gaze, cy, iris_r, min(iris_r, half_h), 20), ident.iris, 0.02)
        p.polygon(_ellipse(cx + gaze, cy, 0.28 * size, min(0.28 * size, half_h), 12), (15, 15, 15), 0.03)
        theta = np.linspace(math.pi, 2 * math.pi, 12)
        lid = np.stack([cx + 1.3 * size * np.cos(theta), cy + half_h * np.sin(theta)], axis=1)
        p.line(lid, dark, 0.03)


def _draw_nose(p: _Painter, ident: Identity) -> None:
    tip_y = -0.02 + ident.nose_length
    w = ident.nose_width
    bridge = np.array([[-0.15 * w, -0.06], [0.15 * w, -0.06], [w, tip_y], [0.0, tip_y + 0.05], [-w, tip_y]])
    p.polygon(bridge, _shade(ident.skin, 0.8), 0.12)
    for side in (-1.0, 1.0):
        p.polygon(_ellipse(side * 0.45 * w, tip_y, 0.28 * w, 0.16 * w, 10), _shade(ident.skin, 0.4), 0.12)


def _draw_mouth(p: _Painter, ident: Identity, expr: Expression) -> None:
    cy = 0.52
    half_w = ident.mouth_width * ident.face_aspect * expr.mouth_width
    gap = 0.32 * expr.mouth_open  # height of the opening
    x = np.linspace(-half_w, half_w, 17)
    bulge = np.sqrt(np.clip(1.0 - (x / half_w) ** 2, 0.0, 1.0))
    upper = np.stack([x, cy - (0.05 + 0.5 * gap) * bulge], axis=1)
    lower = np.stack([x[::-1], cy + (0.07 + 0.5 * gap) * bulge[::-1] ** 0.8], axis=1)
    p.polygon(np.concatenate([upper, lower]), ident.lips)
    if gap < 0.02:
        p.line(np.stack([x, np.full_like(x, cy)], axis=1), _shade(ident.lips, 0.5), 0.02)
        return
    inner = _ellipse(0.0, cy, 0.82 * half_w, 0.5 * gap, 24)
    p.polygon(inner, (70, 20, 25))
    teeth = inner.copy()
    teeth[:, 1] = np.minimum(teeth[:, 1], cy - 0.5 * gap + 0.3 * gap)
    p.polygon(teeth, (240, 240, 230))


def head_coefficients(params: HeadParams) -> FaceCoefficients:
    """The exact face coefficients R of a drawn head (same interface as ``ostnet.face.coefficients``).

    Pose: yaw and roll from ``params.pose`` in degrees, pitch 0 (the heads do not pitch). Expression: the
    drawing parameters (both eyes and both brows alike). Landmarks: the drawn feature points projected like the
    drawing itself, (x, y) in [-1, 1] of the frame.
    """
    ident, expr = params.identity, params.expression
    painter = _Painter(params, 2, None)  # a 2-px canvas: pixel p is frame coordinate p - 0.5
    eye_x, eye_y = ident.eye_spacing * ident.face_aspect, -0.12
    brow_y = eye_y - 1.6 * ident.eye_size - 0.09 * expr.brow_raise
    half_w = ident.mouth_width * ident.face_aspect * expr.mouth_width
    gap = 0.32 * expr.mouth_open
    tip_y = -0.02 + ident.nose_length + 0.05
    lid = 0.7 * ident.eye_size * expr.eye_open  # half the lid gap (``_draw_eyes``)
    flat = np.array(
        [[-eye_x, eye_y], [eye_x, eye_y], [-eye_x, brow_y], [eye_x, brow_y], [-half_w, 0.52], [half_w, 0.52],
         [0.0, 0.52 - 0.05 - 0.5 * gap], [0.0, 0.52 + 0.07 + 0.5 * gap]]
    )  # fmt: skip
    inner = np.array(
        [[-eye_x, eye_y - lid], [-eye_x, eye_y + lid], [eye_x, eye_y - lid], [eye_x, eye_y + lid],
         [0.0, 0.52 - 0.5 * gap], [0.0, 0.52 + 0.5 * gap]]
    )  # fmt: skip
    points = painter.project(flat, 0.0)
    points.insert(4, painter.project(np.array([[0.0, tip_y]]), 0.12)[0])
    points.append(painter.project(np.array([[0.0, 1.0]]), None)[0])
    points += painter.project(inner, 0.0)
    landmarks = np.asarray(points) - 0.5
    pose = (math.degrees(params.pose.yaw), 0.0, math.degrees(params.pose.roll))
    eye, brow = expr.eye_open, expr.brow_raise
    expression = np.array([expr.mouth_open, expr.mouth_width, eye, eye, brow, brow])
    centre = (params.pose.x + params.camera[0], params.pose.y + params.camera[1])
    return FaceCoefficients(np.array(pose), expression, landmarks, np.array([*centre, FACE_FRACTION * params.scale]))


def _frame_coordinates(size: int, camera: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates (x (1, size), y (size, 1)) of the scene behind each pixel of a panned camera."""
    grid = 2.0 * np.arange(size, dtype=np.float32) / (size - 1) - 1.0
    return (grid - camera[0])[None, :], (grid - camera[1])[:, None]


def _background(color: Color, y: np.ndarray) -> np.ndarray:
    ramp = 0.97 - 0.15 * y[..., None]  # lighter at the top: 1.12 .. 0.82 over the frame
    return ramp * np.asarray(color, dtype=np.float32)


PATTERN_WAVES = 5  # plane waves summed into one shading pattern
PATTERN_FREQUENCY = (0.6, 2.2)  # cycles per face half-height (per frame half-width for the background)


def _pattern(seed: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A smooth random pattern in [-1, 1] at coordinates (u, v): tanh of a sum of PATTERN_WAVES plane waves."""
    rng = np.random.default_rng([seed, 31])
    total = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for _ in range(PATTERN_WAVES):
        angle, freq, phase = rng.uniform(0, math.pi), rng.uniform(*PATTERN_FREQUENCY), rng.uniform(0, 2 * math.pi)
        total += np.cos(2 * math.pi * freq * (u * math.cos(angle) + v * math.sin(angle)) + phase)
    return np.tanh(total / math.sqrt(PATTERN_WAVES / 2))


def _shading(
    p: _Painter, seed: int, size: int, texture: float, scene: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative shading (1 + texture * pattern) of the person (in face coordinates, so it moves, turns and
    scales with the head) and of the background (in scene coordinates ``scene``, so it moves only with the
    camera), each (size, size, 1)."""
    grid = np.arange(size, dtype=np.float32)
    dx, dy = (grid[None, :] - p.cx) / p.radius, (grid[:, None] - p.cy) / p.radius
    u = p.cos_roll * dx + p.sin_roll * dy + 0.1 * p.sin_yaw  # undo project(): roll, then the yaw shift
    v = -p.sin_roll * dx + p.cos_roll * dy
    head = 1.0 + texture * _pattern(seed, u, v)
    background = 1.0 + texture * _pattern(seed + 1, *scene)
    return head[..., None], background[..., None]


def render_head(params: HeadParams, size: int, texture: float = 0.0) -> np.ndarray:
    """Draw one frame: uint8 RGB (size, size, 3), supersampled (4x at 64 px, 2x at 256 px), box-filtered.

    ``texture`` in [0, 1): strength of a smooth shading pattern on the person and the background (0: flat
    colours). Flat regions give a reconstruction loss no gradient with respect to motion inside them; a
    pattern that moves with the head does, as the texture of real faces does.
    """
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if not 0.0 <= texture < 1.0:
        raise ValueError(f"texture must be in [0, 1), got {texture}")
    factor = max(1, min(4, math.ceil(256 / size)))
    canvas = size * factor
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    painter = _Painter(params, canvas, ImageDraw.Draw(layer))
    _draw_body_and_hair(painter, params.identity)
    _draw_face(painter, params.identity)
    _draw_eyes(painter, params.identity, params.expression)
    _draw_nose(painter, params.identity)
    _draw_mouth(painter, params.identity, params.expression)
    rgba = np.asarray(layer, dtype=np.float32)
    person, alpha = rgba[..., :3], rgba[..., 3:] / 255.0
    scene = _frame_coordinates(canvas, params.camera)
    background = np.broadcast_to(_background(params.identity.background, scene[1]), (canvas, canvas, 3))
    if texture:
        head, back = _shading(painter, params.identity.pattern_seed, canvas, texture, scene)
        person, background = person * head, background * back
    image = np.clip(alpha * person + (1.0 - alpha) * background, 0, 255)
    out = Image.fromarray(np.round(image).astype(np.uint8))
    if factor > 1:
        out = out.reduce(factor)
    return np.asarray(out, dtype=np.uint8)


@declared
class SyntheticSpec:
    """What ``write_synthetic_dataset`` draws (its arguments, stored in synthetic.json)."""

    num_identities: int = option(8, flag="--identities", metavar="N", help="number of people", bounds=(1, 100000))
    videos_per_identity: int = option(2, flag="--videos", metavar="N", help="videos per person", bounds=(1, 10000))
    num_frames: int = option(32, flag="--frames", metavar="F", help="frames per video", bounds=(1, 100000))
    size: int = option(64, metavar="S", help="frame size in pixels", bounds=(8, 4096))
    scale_range: tuple[float, float] = option(
        (0.6, 1.0), metavar=("LOW", "HIGH"), help="range of each video's face scale", bounds=(0.01, 10.0)
    )
    seed: int = option(0, help="random seed", bounds=(0, None))
    test_identities: int = option(2, metavar="N", help="people in test/", bounds=(0, None))
    motion: float = option(1.0, metavar="M", help="head-motion factor of sample_sequence", bounds=(0.0, 100.0))
    camera: float = option(0.0, metavar="A", help="camera-pan amplitude, frame units (0: still)", bounds=(0.0, 10.0))
    texture: float = option(
        0.0, metavar="T", help="shading-pattern strength of render_head (0: flat colours)", bounds=(0.0, 0.99)
    )
    blink_rate: float = option(
        1.0, metavar="R", help="how many times as often the eyes blink (1: plain clips)", bounds=(0.01, 100.0)
    )

    def check(self) -> None:
        """Raise OstnetError for arguments that cannot make a train and a test split."""
        if min(self.num_identities, self.videos_per_identity, self.num_frames) < 1:
            raise OstnetError("synthetic dataset: identities, videos per identity and frames must be >= 1")
        if not 0 <= self.test_identities < self.num_identities:
            raise OstnetError(
                f"synthetic dataset: test identities ({self.test_identities}) must be fewer than identities "
                f"({self.num_identities}), so that train/ is not empty"
            )
        if self.size < 8:
            raise OstnetError(f"synthetic dataset: size must be >= 8, got {self.size}")
        if not self.motion >= 0.0:
            raise OstnetError(f"synthetic dataset: motion must be >= 0, got {self.motion}")
        if not self.camera >= 0.0:
            raise OstnetError(f"synthetic dataset: camera must be >= 0, got {self.camera}")
        if not self.blink_rate > 0.0:
            raise OstnetError(f"synthetic dataset: blink rate must be > 0, got {self.blink_rate}")
        if not 0.0 <= self.texture < 1.0:
            raise OstnetError(f"synthetic dataset: texture must be in [0, 1), got {self.texture}")
        if not 0.0 < self.scale_range[0] <= self.scale_range[1]:
            raise OstnetError(f"synthetic dataset: scale range must be 0 < low <= high, got {self.scale_range}")


def _write_video(folder: Path, frames: list[HeadParams], size: int, texture: float) -> None:
    folder.mkdir(parents=True)
    for index, params in enumerate(frames):
        Image.fromarray(render_head(params, size, texture)).save(folder / f"{index:07d}.png", compress_level=1)


def _frame_truth(params: HeadParams) -> dict[str, object]:
    pose, expression = params.pose, params.expression
    return {
        "scale": params.scale,
        "center": [pose.x + params.camera[0], pose.y + params.camera[1]],
        "face_height": FACE_FRACTION * params.scale,
        **{key: value for key, value in asdict(pose).items() if key in ("yaw", "roll")},
        **asdict(expression),
    }


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    *,
    num_identities: int = 8,
    videos_per_identity: int = 2,
    num_frames: int = 32,
    size: int = 64,
    scale_range: tuple[float, float] = (0.6, 1.0),
    seed: int = 0,
    test_identities: int = 2,
    motion: float = 1.0,
    camera: float = 0.0,
    texture: float = 0.0,
    blink_rate: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic talking-head dataset in the FOMM layout and return ``root``.

    Layout: ``root/{train,test}/id<i>#vid<j>#000000#<num_frames>.mp4/0000000.png`` (folders of PNG frames);
    the last ``test_identities`` identities go to ``test/``. ``root/synthetic.json`` holds, for every video,
    its split and identity and for every frame the true ``scale``, face ``center`` (x, y) in [-1, 1],
    ``face_height`` (fraction of the frame height), yaw, roll and the expression. Every clip folder also holds
    the exact face coefficients R (``coefficients.npz``, see ``head_coefficients``). Each video's base scale
    is drawn from U(scale_range). ``motion`` multiplies the head motion within each video (see
    ``sample_sequence``; 1 = the plain clips) and ``camera`` is the amplitude of its camera pan. ``texture``
    is ``render_head``'s shading-pattern strength (0 = flat colours) and ``blink_rate`` multiplies how often
    the eyes blink (1 = the plain clips). Deterministic in its arguments.

    The dataset is built in a temporary folder beside ``root`` and moved into place at the end, so an
    interrupted run leaves nothing. An existing non-empty ``root`` is an OstnetError unless ``overwrite``.
    """
    spec = SyntheticSpec(
        num_identities,
        videos_per_identity,
        num_frames,
        size,
        tuple(scale_range),
        seed,
        test_identities,
        motion,
        camera,
        texture,
        blink_rate,
    )
    spec.check()
    root = Path(root)
    if root.exists() and not (root.is_dir() and (overwrite or not any(root.iterdir()))):
        raise OstnetError(f"{root}: already exists and is not an empty folder (use --overwrite to replace it)")
    with AtomicFolder(root) as tmp:
        _fill_dataset(tmp, spec)
    return root


def _fill_dataset(tmp: Path, spec: SyntheticSpec) -> None:
    videos = []
    for i in range(spec.num_identities):
        split = "test" if i >= spec.num_identities - spec.test_identities else "train"
        identity_seed = int(np.random.SeedSequence([spec.seed, i]).generate_state(1)[0])
        for j in range(spec.videos_per_identity):
            name = f"id{i:05d}#vid{j:02d}#000000#{spec.num_frames:06d}.mp4"
            rng = np.random.default_rng([spec.seed, i, j])
            scale = float(rng.uniform(*spec.scale_range))
            frames = sample_sequence(
                identity_seed,
                spec.num_frames,
                scale=scale,
                rng=rng,
                motion=spec.motion,
                camera=spec.camera,
                blink_rate=spec.blink_rate,
            )
            _write_video(tmp / split / name, frames, spec.size, spec.texture)
            save_clip_coefficients(tmp / split / name, [head_coefficients(p) for p in frames])
            truth = [_frame_truth(p) for p in frames]
            videos.append({"split": split, "name": name, "identity": f"id{i:05d}", "frames": truth})
    (tmp / "test").mkdir(exist_ok=True)
    meta = {"format": "ostnet-synthetic-1", "spec": asdict(spec), "fps": FPS, "face_fraction": FACE_FRACTION}
    (tmp / "synthetic.json").write_text(json.dumps({**meta, "videos": videos}, indent=1))
