"""Scale transformation module, Sec. 3.2."""

import torch

from ostnet import build_model
from ostnet.config import ScaleTransformConfig
from ostnet.geometry import base_fiducial_points
from ostnet.models.scale_transform import ScaleTransform, distance_vectors, localisation_input


def test_distance_vectors_eq1():
    kp = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.5, 0.9]]])
    dv = distance_vectors(kp)
    assert torch.allclose(dv.sum(1), torch.zeros(1, 2), atol=1e-7)
    assert torch.allclose(dv[0, 1], torch.tensor([0.5, -0.3]))


def test_localisation_input_layout():
    ks, kd = torch.rand(2, 5, 2), torch.rand(2, 5, 2)
    x = localisation_input(ks, kd, True)
    assert x.shape == (2, 40)
    assert torch.equal(x[:, :10], ks.flatten(1)) and torch.equal(x[:, 10:20], kd.flatten(1))
    assert localisation_input(ks, kd, False).shape == (2, 20)


def test_initial_transform_is_identity():
    st = ScaleTransform(ScaleTransformConfig(), num_kp=15)
    ks, kd = torch.rand(3, 15, 2) * 2 - 1, torch.rand(3, 15, 2) * 2 - 1
    driving = torch.rand(3, 3, 48, 40)
    out = st(ks, kd, driving)
    assert torch.allclose(out.fiducial, base_fiducial_points(20).expand(3, -1, -1))
    assert (out.rectified - driving).abs().max() < 1e-5
    assert out.z.shape == (3, 128)


def test_model_rectified_equals_driving_at_init():
    model = build_model("ostnet-vox-256").eval()
    source, driving = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        out = model(source, driving)
    assert (out.rectified - driving).abs().max() < 1e-5


def test_st_can_represent_a_zoom():
    """Setting F_fc's bias to s*C' rescales the driving image about the centre (an analytic case)."""
    st = ScaleTransform(ScaleTransformConfig(num_fiducial=20), num_kp=4)
    with torch.no_grad():
        st.fiducial.bias.mul_(0.5)  # sample the central half of the image: a 2x zoom-in
    image = torch.zeros(1, 1, 33, 33)
    image[..., 12:21, 12:21] = 1.0  # a 9-pixel square in the middle
    out = st(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), image)
    width = (out.rectified[0, 0, 16] > 0.5).sum().item()
    assert 17 <= width <= 19  # 9 pixels scaled by 2
