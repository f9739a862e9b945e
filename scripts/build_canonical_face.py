"""Build ``src/ostnet/face/canonical_face.npy``: the canonical face mesh that head pose is fitted to.

MediaPipe's wheel has the face-mesh model but not its canonical face model, so we make one from the sample
material (/work/shared/data): the face mesh of every human portrait and of every 10th frame of every clip,
aligned by generalised Procrustes (similarity transforms), averaged, made exactly left-right symmetric (pairs
found by matching the mirrored mean to itself) and turned into the head frame of ``ostnet.geometry.rotation``:
x from the subject's right to left eye (image left -> right for a frontal face), y down along the line from
the forehead (point 10) to the chin (152), z away from the camera. See docs/design.md "Face coefficients".

    OMP_NUM_THREADS=1 .venv/bin/python scripts/build_canonical_face.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from ostnet.face.coefficients import CANONICAL_PATH, similarity_fit
from ostnet.face.mesh import FaceMesh
from ostnet.io.video import iter_frames


def collect(data: Path) -> list[np.ndarray]:
    meshes = []
    with FaceMesh(static=True) as mesh:
        for path in sorted((data / "portraits").glob("*.jpg")):
            points = mesh.landmarks(np.asarray(Image.open(path).convert("RGB")))
            if points is not None:
                meshes.append(points)
        for path in sorted((data / "clips").glob("*.mp4")):
            for i, frame in enumerate(iter_frames(path)):
                if i % 10 == 0:
                    points = mesh.landmarks(frame)
                    if points is not None:
                        meshes.append(points)
    return meshes


def procrustes_mean(meshes: list[np.ndarray], iterations: int = 5) -> np.ndarray:
    ref = meshes[0] - meshes[0].mean(0)
    for _ in range(iterations):
        aligned = []
        for m in meshes:
            s, rot, t = similarity_fit(m, ref)
            aligned.append(s * m @ rot.T + t)
        ref = np.mean(aligned, axis=0)
        ref = (ref - ref.mean(0)) / np.sqrt(((ref - ref.mean(0)) ** 2).sum(1).mean())
    return ref


def to_head_frame(mesh: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Rotate so that the symmetry plane is x = 0 and the forehead-chin line runs along +y."""
    diffs = mesh - mesh[pairs]  # point minus its mirror partner: along the symmetry plane's normal
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    x = vt[0] * np.sign(vt[0] @ (mesh[263] - mesh[33]))  # subject's right eye corner -> left eye corner
    down = mesh[152] - mesh[10]
    y = down - (down @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return (mesh - mesh.mean(0)) @ np.stack([x, y, z]).T


def symmetric(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mirrored = mesh * np.array([-1.0, 1.0, 1.0])
    cost = ((mesh[:, None] - mirrored[None]) ** 2).sum(-1)
    _, pairs = linear_sum_assignment(cost)
    head = to_head_frame(mesh, pairs)
    head = 0.5 * (head + head[pairs] * np.array([-1.0, 1.0, 1.0]))
    return head, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data")
    args = parser.parse_args()
    meshes = collect(args.data)
    mean = procrustes_mean(meshes)
    # Pair every point with its mirror image; symmetrise twice (the frame depends on the pairs).
    head, pairs = symmetric(mean)
    head, pairs = symmetric(head)
    np.save(CANONICAL_PATH, head.astype(np.float32))
    print(f"{len(meshes)} meshes -> {CANONICAL_PATH} ({int((pairs != np.arange(len(pairs))).sum())} paired points)")


if __name__ == "__main__":
    main()
