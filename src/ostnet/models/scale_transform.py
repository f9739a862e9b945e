"""Scale transformation module (ST), paper Sec. 3.2, Eqs. 1-3 and Fig. 3.

keypoints of S and D --(Eq. 1: distance vectors to the centroid)--> T_theta (4-layer MLP, App. A / Fig. 9d)
--> latent scale code z --(F_fc)--> T fiducial points C --(TPS grid generator, RARE/STN)--> M_tran
--(Eq. 3: warp)--> scale-rectified driving image I_D^.

Choices the paper leaves open (documented in docs/design.md):

* Width of T_theta and size of z (256 and 128 for the vox presets). ReLU after the first three layers; z
  itself is linear because it is added to feature maps (Sec. 3.3).
* F_fc is zero-initialised with its bias equal to the base points C', so the first transform is exactly the
  identity (RARE/STN practice, reference-architecture.md §5.4). The output is not squashed by tanh: a tanh
  could never reach the base points on the image border (+-1).
* The driving image is sampled with ``padding_mode="border"`` so zooming out does not bring black borders in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ostnet.config import ScaleTransformConfig
from ostnet.geometry import TPSGridGenerator, base_fiducial_points, warp
from ostnet.models.outputs import ScaleTransformOutput


def distance_vectors(kp: Tensor) -> Tensor:
    """Eq. 1: Delta d^k = x^k - mean_k x^k. (B, K, 2) -> (B, K, 2)."""
    return kp - kp.mean(dim=1, keepdim=True)


def localisation_input(kp_source: Tensor, kp_driving: Tensor, use_distance_vectors: bool = True) -> Tensor:
    """Eq. 2's input x_S || x_D || Delta d_S || Delta d_D, flattened: (B, 8K) (or (B, 4K) without DV)."""
    parts = [kp_source, kp_driving]
    if use_distance_vectors:
        parts += [distance_vectors(kp_source), distance_vectors(kp_driving)]
    return torch.cat([p.flatten(1) for p in parts], dim=1)


class ScaleTransform(nn.Module):
    """The scale transformation module of Sec. 3.2.

    Args:
        cfg: ScaleTransformConfig (T = 20 fiducial points, 4-layer T_theta, distance vectors on/off).
        num_kp: K, the number of keypoints per image.
    """

    def __init__(self, cfg: ScaleTransformConfig, num_kp: int) -> None:
        super().__init__()
        self.cfg = cfg
        in_features = (8 if cfg.use_distance_vectors else 4) * num_kp
        widths = [in_features] + [cfg.hidden_features] * (cfg.num_layers - 1) + [cfg.latent_dim]
        layers: list[nn.Module] = []
        for i in range(cfg.num_layers):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < cfg.num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.localization = nn.Sequential(*layers)  # T_theta
        self.fiducial = nn.Linear(cfg.latent_dim, 2 * cfg.num_fiducial)  # F_fc
        self.grid_generator = TPSGridGenerator(cfg.num_fiducial)
        self.reset_fiducial()

    def reset_fiducial(self) -> None:
        """Zero weights, bias = C': the initial prediction is the base points, i.e. the identity transform."""
        nn.init.zeros_(self.fiducial.weight)
        with torch.no_grad():
            self.fiducial.bias.copy_(base_fiducial_points(self.cfg.num_fiducial).flatten())

    def encode(self, kp_source: Tensor, kp_driving: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 2: keypoints (B, K, 2) of S and D -> (z (B, Z), fiducial points C (B, T, 2))."""
        z = self.localization(localisation_input(kp_source, kp_driving, self.cfg.use_distance_vectors))
        fiducial = self.fiducial(z).view(z.shape[0], self.cfg.num_fiducial, 2)
        return z, fiducial

    def forward(self, kp_source: Tensor, kp_driving: Tensor, driving: Tensor) -> ScaleTransformOutput:
        """Eqs. 2-3. driving: (B, C, H, W) -> ScaleTransformOutput with the rectified image I_D^."""
        z, fiducial = self.encode(kp_source, kp_driving)
        h, w = driving.shape[-2:]
        grid = self.grid_generator(fiducial.to(driving.dtype), h, w)  # M_tran, (B, H, W, 2)
        rectified = warp(driving, grid, padding_mode=self.cfg.padding_mode)
        return ScaleTransformOutput(z=z, fiducial=fiducial, grid=grid, rectified=rectified)
