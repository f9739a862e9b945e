import pytest
import torch

from ostnet.geometry import keypoints_to_gaussian, make_coordinate_grid, resize_flow


def test_grid_corners_and_order():
    g = make_coordinate_grid(3, 5)
    assert g.shape == (3, 5, 2)
    assert g[0, 0].tolist() == [-1.0, -1.0]
    assert g[-1, -1].tolist() == [1.0, 1.0]
    assert g[0, -1].tolist() == [1.0, -1.0]  # last column, first row: x = +1, y = -1
    assert g[1, 2].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        make_coordinate_grid(0, 4)


def test_gaussian_peaks_at_keypoint():
    kp = torch.tensor([[[0.5, -0.5], [0.0, 0.0]]])
    maps = keypoints_to_gaussian(kp, 5, 5, variance=0.01)
    assert maps.shape == (1, 2, 5, 5)
    assert maps[0, 0, 1, 3].item() == pytest.approx(1.0)  # (x=0.5, y=-0.5) is column 3, row 1
    assert maps[0, 1, 2, 2].item() == pytest.approx(1.0)
    assert maps[0, 0, 1, 2].item() == pytest.approx(torch.exp(torch.tensor(-0.25 / 0.02)).item(), rel=1e-5)


def test_resize_flow_keeps_identity():
    flow = make_coordinate_grid(4, 4)[None]
    assert torch.allclose(resize_flow(flow, 7, 7)[0], make_coordinate_grid(7, 7), atol=1e-6)
