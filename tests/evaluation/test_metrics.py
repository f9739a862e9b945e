"""L1 / PSNR / SSIM: against skimage.metrics, analytic and golden values, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ostnet.errors import OstnetError
from ostnet.evaluation import metrics as M


def _golden_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed 32x32 RGB images: smooth ramps vs warped ramps and a checkerboard."""
    y, x = np.mgrid[0:32, 0:32] / 31.0
    a = np.stack([x, y, 0.5 * (x + y)], -1)
    b = np.stack([np.sqrt(x), y**2, ((np.floor(x * 8) + np.floor(y * 8)) % 2) * 0.5 + 0.25], -1)
    return torch.from_numpy(b).permute(2, 0, 1), torch.from_numpy(a).permute(2, 0, 1)  # pred, target


@pytest.mark.parametrize("size", [(7, 7), (32, 48), (64, 64)])
def test_against_skimage_on_random_images(size):
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(3, 3, *size, generator=gen)
    pred = (target + 0.2 * torch.randn(3, 3, *size, generator=gen)).clamp(0, 1)
    ours_ssim, ours_psnr, ours_l1 = M.ssim(pred, target), M.psnr(pred, target), M.l1(pred, target)
    for i in range(3):
        t = target[i].permute(1, 2, 0).double().numpy()
        p = pred[i].permute(1, 2, 0).double().numpy()
        ref_ssim = structural_similarity(t, p, channel_axis=-1, data_range=1.0)
        assert ours_ssim[i].item() == pytest.approx(ref_ssim, abs=1e-7)
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1.0), abs=1e-7)
        assert ours_l1[i].item() == pytest.approx(np.abs(t - p).mean(), abs=1e-9)


def test_legacy_data_range_two_matches_skimage():
    pred, target = _golden_pair()
    ref = structural_similarity(target.permute(1, 2, 0).numpy(), pred.permute(1, 2, 0).numpy(),
                                channel_axis=-1, data_range=2.0)  # fmt: skip
    assert M.ssim(pred, target, data_range=2.0).item() == pytest.approx(ref, abs=1e-9)
    assert M.ssim(pred, target, data_range=2.0).item() > M.ssim(pred, target).item()


def test_golden_values_on_fixed_images():
    pred, target = _golden_pair()  # values below computed once with skimage 0.26
    assert M.ssim(pred, target).item() == pytest.approx(0.506363591073767, abs=1e-9)
    assert M.psnr(pred, target).item() == pytest.approx(12.45845936108725, abs=1e-9)
    assert M.l1(pred, target).item() == pytest.approx(0.19804926790205926, abs=1e-12)


def test_analytic_constant_images():
    black, grey = torch.zeros(1, 3, 16, 16), torch.full((1, 3, 16, 16), 0.5)
    assert M.l1(black, grey).item() == pytest.approx(0.5)
    assert M.psnr(black, grey).item() == pytest.approx(10 * math.log10(4.0))  # MSE = 0.25
    c1 = (0.01 * 1.0) ** 2  # zero variance: SSIM = c1 / (0.25 + c1)
    assert M.ssim(black, grey).item() == pytest.approx(c1 / (0.25 + c1), rel=1e-9)


def test_identical_images():
    img = torch.rand(2, 3, 20, 20)
    assert torch.all(M.l1(img, img) == 0)
    assert torch.all(torch.isinf(M.psnr(img, img)))
    assert torch.allclose(M.ssim(img, img), torch.ones(2, dtype=torch.float64))


def test_single_image_and_batch_agree():
    pred, target = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    batched = M.ssim(pred, target)
    assert batched.shape == (4,)
    assert M.ssim(pred[2], target[2]).item() == pytest.approx(batched[2].item())


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 20), "sizes do not match"),
        (torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16), "expected \\[0, 1\\]"),
        (torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16), "expected \\[0, 1\\]"),
        (torch.rand(16, 16), torch.rand(16, 16), "expected \\(B, C, H, W\\)"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "float"),
        (torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5), "smaller than the window"),
    ],
)
def test_bad_inputs_raise_clear_errors(pred, target, match):
    with pytest.raises(M.MetricInputError, match=match) as info:
        M.ssim(pred, target)
    assert isinstance(info.value, OstnetError) and isinstance(info.value, ValueError)


def test_resize_for_metrics():
    img = torch.rand(2, 3, 64, 64)
    up = M.resize_for_metrics(img)
    assert up.shape == (2, 3, 256, 256)
    assert torch.allclose(up[..., 0, 0], img[..., 0, 0])  # align_corners=True keeps the corner pixels
    assert M.resize_for_metrics(up) is up
    down = M.resize_for_metrics(torch.full((3, 300, 280), 0.25))
    assert down.shape == (3, 256, 256) and torch.allclose(down, torch.tensor(0.25))
