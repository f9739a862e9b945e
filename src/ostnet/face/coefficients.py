"""Face coefficients R (PECHead, seed-systems.md §2): head pose, expression and predefined landmarks.

From a real face: MediaPipe's face mesh (``ostnet.face.mesh``), a rigid similarity fit of the canonical face
(``canonical_face.npy``, built by ``scripts/build_canonical_face.py``) to the mesh's rigid points gives the
pose; the mesh, brought back into the canonical frame, gives the expression. The synthetic heads give the exact
same quantities from their drawing parameters (``ostnet.data.synthetic.head_coefficients``).

Conventions (``ostnet.geometry.rotation``): yaw, pitch, roll in degrees; landmarks (x, y) in [-1, 1] of the
frame (pixel centres, as everywhere in ostnet). Expression coefficients, all 0 at "closed"/neutral:

* ``mouth_open``: inner-lip gap / (0.5 x inter-ocular distance): 0 closed, ~1 wide open;
* ``mouth_width``: mouth-corner distance relative to the canonical face's (1 neutral, > 1 smile/stretch);
* ``eye_right``, ``eye_left`` (the subject's): lid gap / eye width relative to the canonical face's (1 open,
  0 closed);
* ``brow_right``, ``brow_left``: brow height above the eye, change from the canonical face's, in units of 0.14
  inter-ocular distances (the synthetic heads' ``brow_raise`` unit).

``placement`` (cx, cy, size): where the head is, (cx, cy) its centre in [-1, 1] of the frame and ``size`` the
face height (forehead to chin) as a fraction of the frame height.

The design and the calibration constants are in docs/design.md "Face coefficients".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ostnet.errors import OstnetError
from ostnet.face.mesh import FaceMesh
from ostnet.geometry.rotation import euler_angles
from ostnet.io.atomic import atomic_write

CANONICAL_PATH = Path(__file__).with_name("canonical_face.npy")

POSE_NAMES = ("yaw", "pitch", "roll")
EXPRESSION_NAMES = ("mouth_open", "mouth_width", "eye_right", "eye_left", "brow_right", "brow_left")
NEUTRAL_EXPRESSION = (0.0, 1.0, 1.0, 1.0, 0.0, 0.0)
# Predefined landmarks (the subject's right/left); with their mirror partner for flipped frames.
LANDMARK_NAMES = (
    "eye_right",
    "eye_left",
    "brow_right",
    "brow_left",
    "nose_tip",
    "mouth_right",
    "mouth_left",
    "lip_upper",
    "lip_lower",
    "chin",
    "lid_upper_right",
    "lid_lower_right",
    "lid_upper_left",
    "lid_lower_left",
    "lip_inner_upper",
    "lip_inner_lower",
)
LANDMARK_MIRROR = (1, 0, 3, 2, 4, 6, 5, 7, 8, 9, 12, 13, 10, 11, 14, 15)
NUM_COEFFICIENTS = len(POSE_NAMES) + len(EXPRESSION_NAMES)
NUM_LANDMARKS = len(LANDMARK_NAMES)
COEFFICIENT_DIM = NUM_COEFFICIENTS + 3 + 2 * NUM_LANDMARKS  # ``FaceCoefficients.flat``

# MediaPipe face-mesh indices (subject's right = the mesh's "right").
_EYE_R = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
_EYE_L = (263, 362, 386, 374)
_BROW_R, _BROW_L = 105, 334
_MOUTH_R, _MOUTH_L, _LIP_IN_UP, _LIP_IN_LOW, _LIP_UP, _LIP_LOW = 61, 291, 13, 14, 0, 17
_NOSE_TIP, _CHIN, _FOREHEAD = 1, 152, 10
MOUTH_OPEN_UNIT = 0.5  # inner-lip gap (inter-ocular distances) read as mouth_open = 1
BROW_UNIT = 0.14  # brow lift (inter-ocular distances) read as brow = 1
_MOVING = {  # lips, eyes, brows, irises: not used for the rigid pose fit
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269, 270,
    291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
    249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466,
    7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
    276, 282, 283, 285, 293, 295, 296, 300, 334, 336, 46, 52, 53, 55, 63, 65, 66, 70, 105, 107,
    *range(468, 478),
}  # fmt: skip


@dataclass(frozen=True)
class FaceCoefficients:
    """R for one face: ``pose`` (yaw, pitch, roll) degrees, ``expression`` (EXPRESSION_NAMES), ``landmarks``
    (NUM_LANDMARKS, 2) in [-1, 1] of the frame (LANDMARK_NAMES), ``placement`` (cx, cy, size)."""

    pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    expression: np.ndarray = field(default_factory=lambda: np.asarray(NEUTRAL_EXPRESSION))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((NUM_LANDMARKS, 2)))
    placement: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.5]))

    def __post_init__(self) -> None:
        shapes = (("pose", (3,)), ("expression", (len(EXPRESSION_NAMES),)), ("landmarks", None), ("placement", (3,)))
        for name, shape in shapes:
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if shape is not None and value.shape != shape:
                raise ValueError(f"FaceCoefficients.{name}: expected shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)
        if self.landmarks.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"FaceCoefficients.landmarks: expected ({NUM_LANDMARKS}, 2), got {self.landmarks.shape}")

    def __getattr__(self, name: str) -> float:
        if name in POSE_NAMES:
            return float(self.pose[POSE_NAMES.index(name)])
        if name in EXPRESSION_NAMES:
            return float(self.expression[EXPRESSION_NAMES.index(name)])
        raise AttributeError(name)

    def vector(self) -> np.ndarray:
        """(NUM_COEFFICIENTS,) pose then expression, float32 (what the model is conditioned on)."""
        return np.concatenate([self.pose, self.expression]).astype(np.float32)

    def mirrored(self) -> FaceCoefficients:
        """The coefficients of the horizontally flipped frame: yaw and roll negated, left and right swapped."""
        expression = self.expression.copy()
        for a, b in ((2, 3), (4, 5)):
            expression[[a, b]] = expression[[b, a]]
        landmarks = self.landmarks[list(LANDMARK_MIRROR)] * np.array([-1.0, 1.0])
        placement = self.placement * np.array([-1.0, 1.0, 1.0])
        return FaceCoefficients(self.pose * np.array([-1.0, 1.0, -1.0]), expression, landmarks, placement)

    def flat(self) -> np.ndarray:
        """(COEFFICIENT_DIM,) float32: pose, expression, placement, landmarks (the model's layout)."""
        return np.concatenate([self.pose, self.expression, self.placement, self.landmarks.reshape(-1)]).astype(
            np.float32
        )

    def with_values(self, **values: float) -> FaceCoefficients:
        """A copy with named pose/expression values replaced (``with_values(yaw=10, mouth_open=0.5)``)."""
        pose, expression = self.pose.copy(), self.expression.copy()
        for name, value in values.items():
            if name in POSE_NAMES:
                pose[POSE_NAMES.index(name)] = value
            elif name in EXPRESSION_NAMES:
                expression[EXPRESSION_NAMES.index(name)] = value
            else:
                raise ValueError(f"unknown coefficient {name!r}; known: {', '.join(POSE_NAMES + EXPRESSION_NAMES)}")
        return replace(self, pose=pose, expression=expression)


def mirror_flat(flat: np.ndarray) -> np.ndarray:
    """``FaceCoefficients.flat`` vectors (..., COEFFICIENT_DIM) of horizontally flipped frames (NaN stays NaN)."""
    out = np.array(flat, dtype=np.float32, copy=True)
    out[..., [0, 2]] *= -1  # yaw, roll
    out[..., [5, 6, 7, 8]] = out[..., [6, 5, 8, 7]]  # eyes, brows: right <-> left
    out[..., 9] *= -1  # placement cx
    landmarks = out[..., 12:].reshape(*out.shape[:-1], NUM_LANDMARKS, 2)[..., list(LANDMARK_MIRROR), :]
    landmarks[..., 0] *= -1
    out[..., 12:] = landmarks.reshape(*out.shape[:-1], -1)
    return out


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991): scale s, rotation R (det +1), t with dst ~ s * src @ R.T + t."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(src.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (a**2).sum(1).mean())
    return scale, rot, mu_d - scale * mu_s @ rot.T


@lru_cache(maxsize=1)
def canonical_face() -> np.ndarray:
    """(478, 3) canonical face mesh in the head frame (symmetric about x = 0, unit RMS)."""
    if not CANONICAL_PATH.is_file():
        raise FileNotFoundError(f"{CANONICAL_PATH} is missing; rebuild it with scripts/build_canonical_face.py")
    return np.load(CANONICAL_PATH).astype(np.float64)


@lru_cache(maxsize=1)
def _rigid_indices() -> np.ndarray:
    canon = canonical_face()
    upper = canon[:, 1] < canon[_LIP_UP, 1]  # above the upper lip: the jaw moves with the mouth
    return np.array([i for i in range(len(canon)) if upper[i] and i not in _MOVING])


def _expression(head: np.ndarray) -> np.ndarray:
    """Expression coefficients of a mesh in the canonical frame (rotation and scale removed)."""

    def eye_center(idx: tuple[int, ...]) -> np.ndarray:
        return 0.5 * (head[idx[0]] + head[idx[1]])

    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(head[i] - head[j]))

    iod = float(np.linalg.norm(eye_center(_EYE_R) - eye_center(_EYE_L)))
    eye = [dist(e[2], e[3]) / dist(e[0], e[1]) for e in (_EYE_R, _EYE_L)]
    brow = [float(eye_center(e)[1] - head[b, 1]) / iod for e, b in ((_EYE_R, _BROW_R), (_EYE_L, _BROW_L))]
    return np.array(
        [dist(_LIP_IN_UP, _LIP_IN_LOW) / iod / MOUTH_OPEN_UNIT, dist(_MOUTH_R, _MOUTH_L) / iod, *eye, *brow]
    )


@lru_cache(maxsize=1)
def _canonical_expression() -> np.ndarray:
    return _expression(canonical_face())


def coefficients_from_mesh(points: np.ndarray, width: int, height: int) -> FaceCoefficients:
    """R from a (478, 3) face mesh in pixels (``FaceMesh.landmarks``) of a ``width`` x ``height`` frame."""
    canon, rigid = canonical_face(), _rigid_indices()
    scale, rot, shift = similarity_fit(canon[rigid], points[rigid])
    yaw, pitch, roll = euler_angles(torch.from_numpy(rot))
    head = (points - shift) @ rot / scale  # back into the canonical frame
    centre = 2.0 * ((canon.mean(0) * scale @ rot.T + shift)[:2] - 0.5) / np.array([width - 1, height - 1]) - 1.0
    size = scale * float(np.linalg.norm(canon[_CHIN] - canon[_FOREHEAD])) / height
    raw, ref = _expression(head), _canonical_expression()
    expression = np.concatenate([raw[:1], raw[1:4] / ref[1:4], (raw[4:] - ref[4:]) / BROW_UNIT])
    pose = np.array([yaw.item(), pitch.item(), roll.item()])
    return FaceCoefficients(pose, expression, _landmarks(points, width, height), np.array([*centre, size]))


def _select_landmarks(points: np.ndarray) -> np.ndarray:
    """The LANDMARK_NAMES points (NUM_LANDMARKS, D) of a (478, D) mesh."""
    eye_right, eye_left = (0.5 * (points[e[0]] + points[e[1]]) for e in (_EYE_R, _EYE_L))
    picked = [points[i] for i in (_BROW_R, _BROW_L, _NOSE_TIP, _MOUTH_R, _MOUTH_L, _LIP_UP, _LIP_LOW, _CHIN)]
    lids = [points[i] for i in (*_EYE_R[2:], *_EYE_L[2:], _LIP_IN_UP, _LIP_IN_LOW)]
    return np.stack([eye_right, eye_left, *picked, *lids])


def _landmarks(points: np.ndarray, width: int, height: int) -> np.ndarray:
    xy = points[:, :2] - 0.5  # MediaPipe's x * W is measured from the frame's edge; ours from pixel centres
    return 2.0 * _select_landmarks(xy) / np.array([width - 1, height - 1]) - 1.0


# The mean face in the model's head frame (``ostnet.models.pechead``, E): origin at the mesh mean (the placement
# centre of ``coefficients_from_mesh``), unit = half the forehead-chin distance (the placement's ``size``), axes of
# ``ostnet.geometry.rotation`` (z away from the camera). Used to warm-start E (docs/design.md "PECHead: the model").


def _mean_face() -> tuple[np.ndarray, float]:
    canon = canonical_face()
    unit = 0.5 * float(np.linalg.norm(canon[_CHIN] - canon[_FOREHEAD]))
    return (canon - canon.mean(0)) / unit, unit


def mean_face_landmarks() -> np.ndarray:
    """(NUM_LANDMARKS, 3) the predefined landmarks of the mean face in the head frame."""
    return _select_landmarks(_mean_face()[0])


def mean_face_points(count: int) -> np.ndarray:
    """(count, 3) points of the mean face mesh spread over it (farthest-point sampling in the image plane,
    starting at the nose tip; deterministic)."""
    mesh = _mean_face()[0][:468]  # without the iris points
    chosen = [_NOSE_TIP]
    distance = np.linalg.norm(mesh[:, :2] - mesh[_NOSE_TIP, :2], axis=1)
    while len(chosen) < count:
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(mesh[:, :2] - mesh[chosen[-1], :2], axis=1))
    return mesh[chosen]


def landmark_expression_basis() -> np.ndarray:
    """(len(EXPRESSION_NAMES), NUM_LANDMARKS, 3): how the predefined landmarks of the mean face move (head frame)
    per unit of each expression coefficient, from the coefficients' own definitions: mouth_open splits the
    inner-lip gap of 0.5 IOD between the lips (outer lips moved alike); mouth_width scales the corners' distance
    from the mouth centre; a brow unit lifts the brow by BROW_UNIT IOD; an eye coefficient scales the lid gap
    relative to the mean face's, split between the two lids (the eye centres do not move)."""
    landmarks = mean_face_landmarks()
    names = {name: i for i, name in enumerate(LANDMARK_NAMES)}
    iod = float(np.linalg.norm(landmarks[names["eye_right"]] - landmarks[names["eye_left"]]))
    basis = np.zeros((len(EXPRESSION_NAMES), NUM_LANDMARKS, 3))
    mouth_open, mouth_width = EXPRESSION_NAMES.index("mouth_open"), EXPRESSION_NAMES.index("mouth_width")
    for lip, sign in (("upper", -1.0), ("lower", 1.0)):
        basis[mouth_open, [names[f"lip_{lip}"], names[f"lip_inner_{lip}"]], 1] = sign * 0.5 * MOUTH_OPEN_UNIT * iod
    centre = 0.5 * (landmarks[names["mouth_right"]] + landmarks[names["mouth_left"]])
    for corner in ("mouth_right", "mouth_left"):
        basis[mouth_width, names[corner], 0] = landmarks[names[corner], 0] - centre[0]
    for side in ("right", "left"):
        basis[EXPRESSION_NAMES.index(f"brow_{side}"), names[f"brow_{side}"], 1] = -BROW_UNIT * iod
        upper, lower = names[f"lid_upper_{side}"], names[f"lid_lower_{side}"]
        gap = landmarks[lower] - landmarks[upper]  # the mean face's lid gap (eye coefficient 1)
        basis[EXPRESSION_NAMES.index(f"eye_{side}"), upper] = -0.5 * gap
        basis[EXPRESSION_NAMES.index(f"eye_{side}"), lower] = 0.5 * gap
    return basis


COEFFICIENTS_FILE = "coefficients.npz"  # beside a clip's frames (``ostnet prepare --coefficients``)


def stack_coefficients(per_frame: list[FaceCoefficients | None]) -> dict[str, np.ndarray]:
    """Per-frame coefficients (None: no face) -> arrays ``pose`` (T, 3), ``expression`` (T, 6), ``landmarks``
    (T, L, 2) and ``found`` (T,) bool; frames without a face hold NaN."""
    t = len(per_frame)
    out = {
        "pose": np.full((t, 3), np.nan, np.float32),
        "expression": np.full((t, len(EXPRESSION_NAMES)), np.nan, np.float32),
        "landmarks": np.full((t, NUM_LANDMARKS, 2), np.nan, np.float32),
        "placement": np.full((t, 3), np.nan, np.float32),
        "found": np.zeros(t, bool),
    }
    for i, c in enumerate(per_frame):
        if c is not None:
            out["pose"][i], out["expression"][i], out["landmarks"][i], out["placement"][i] = (
                c.pose, c.expression, c.landmarks, c.placement
            )  # fmt: skip
            out["found"][i] = True
    return out


def save_clip_coefficients(folder: Path, per_frame: list[FaceCoefficients | None]) -> Path:
    """Write ``folder/coefficients.npz`` atomically (``ostnet.io.atomic``)."""

    arrays = stack_coefficients(per_frame)
    return atomic_write(Path(folder) / COEFFICIENTS_FILE, lambda tmp: np.savez(tmp, **arrays))


def load_clip_coefficients(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``folder/coefficients.npz`` (see ``stack_coefficients``), or None when there is none."""
    path = Path(folder) / COEFFICIENTS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in ("pose", "expression", "landmarks", "placement", "found")}
    if arrays["landmarks"].shape[1:] != (NUM_LANDMARKS, 2):
        raise OstnetError(
            f"{path}: written with {arrays['landmarks'].shape[1]} predefined landmarks, this ostnet uses "
            f"{NUM_LANDMARKS}; write them again (`ostnet prepare --coefficients`, or `ostnet synth` for "
            "synthetic heads)"
        )
    return arrays


def flat_coefficients(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(T, COEFFICIENT_DIM) ``flat`` rows of ``load_clip_coefficients`` output; NaN rows where no face."""
    t = len(arrays["found"])
    return np.concatenate(
        [arrays["pose"], arrays["expression"], arrays["placement"], arrays["landmarks"].reshape(t, -1)], axis=1
    ).astype(np.float32)


def frame_coefficients(arrays: dict[str, np.ndarray], index: int) -> FaceCoefficients | None:
    """Frame ``index`` of ``load_clip_coefficients`` output (None where no face was found)."""
    if not arrays["found"][index]:
        return None
    return FaceCoefficients(
        arrays["pose"][index], arrays["expression"][index], arrays["landmarks"][index], arrays["placement"][index]
    )


class CoefficientEstimator:
    """R for RGB frames: MediaPipe face mesh + ``coefficients_from_mesh``. ``static=False`` tracks a video."""

    def __init__(self, static: bool = True) -> None:

        self.mesh = FaceMesh(static=static)

    def __call__(self, frame: np.ndarray) -> FaceCoefficients | None:
        points = self.mesh.landmarks(frame)
        return None if points is None else coefficients_from_mesh(points, frame.shape[1], frame.shape[0])

    def close(self) -> None:
        self.mesh.close()

    def __enter__(self) -> CoefficientEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
