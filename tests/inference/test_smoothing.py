"""Motion smoothing (ostnet.inference.smoothing) and its use in the Animator (``--motion-smooth``)."""

from __future__ import annotations

import pytest
import torch

from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator
from ostnet.inference.smoothing import SMOOTH_METHODS, SmoothingConfig, make_smoother, smooth_tensors
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")
FILTERS = [m for m in SMOOTH_METHODS if m != "none"]


@pytest.mark.parametrize("method", SMOOTH_METHODS)
def test_constant_passes_unchanged(method):
    x = torch.tensor([0.3, -0.7, 0.1]).expand(40, 3)
    smoother = make_smoother(method)
    assert torch.allclose(smoother(x), x, atol=1e-6)


@pytest.mark.parametrize("method", FILTERS)
def test_noise_variance_is_lowered(method):
    gen = torch.Generator().manual_seed(0)
    noise = 0.02 * torch.randn(400, 20, generator=gen)
    out = make_smoother(method)(noise)
    assert out[50:].var() < 0.5 * noise[50:].var()


@pytest.mark.parametrize("method", FILTERS)
def test_lag_on_a_ramp_is_bounded(method):
    """A keypoint moving steadily (0.01 per frame, a fast head turn): the output trails by at most 2 frames."""
    t = torch.arange(100, dtype=torch.float32)[:, None]
    ramp = 0.01 * t
    out = make_smoother(method)(ramp)
    lag_frames = (ramp[60:] - out[60:]).abs().max() / 0.01
    assert lag_frames <= 2.0


def test_ema_lag_is_its_analytic_value():
    alpha = 0.25
    out = make_smoother(SmoothingConfig("ema", ema_alpha=alpha))(torch.arange(200.0)[:, None])
    assert (torch.arange(200.0)[-1] - out[-1, 0]).item() == pytest.approx((1 - alpha) / alpha, rel=1e-4)


@pytest.mark.parametrize("method", FILTERS)
def test_state_carries_across_calls_and_resets(method):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=gen)
    whole = make_smoother(method)(x)
    smoother = make_smoother(method)
    parts = torch.cat([smoother(x[:7]), smoother(x[7:20]), smoother(x[20:])])
    torch.testing.assert_close(parts, whole)
    smoother.reset()
    torch.testing.assert_close(smoother(x[10:]), make_smoother(method)(x[10:]))


def test_smooth_tensors_keeps_shapes_and_none():
    x = torch.ones(5, 3, 2)
    out = smooth_tensors(make_smoother("ema"), [x, None, torch.zeros(5, 4)])
    assert out[0].shape == (5, 3, 2) and out[1] is None and out[2].shape == (5, 4)


def test_bad_config():
    with pytest.raises(OstnetError, match="unknown --motion-smooth 'gauss'"):
        SmoothingConfig("gauss")
    with pytest.raises(OstnetError, match="alpha"):
        SmoothingConfig("ema", ema_alpha=0.0)


@pytest.mark.parametrize("preset", ["tiny", "fomm-vox-256"])
def test_animator_smoothing_for_ostnet_and_fomm_models(preset):
    """Still driving frames: smoothing changes nothing. Jittering frames: the output moves less."""
    torch.manual_seed(0)
    cfg_model = build_model(preset) if preset == "tiny" else _small_fomm()
    size = cfg_model.image_size
    gen = torch.Generator().manual_seed(2)
    base = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=gen), size=(size, size), mode="bilinear")
    source, still = base[:1], base[1:].expand(6, 3, size, size)
    plain = Animator(cfg_model, device="cpu", mode="absolute")
    plain.set_source(source)
    smoothed = Animator(cfg_model, device="cpu", mode="absolute", motion_smooth="kalman")
    smoothed.set_source(source)
    torch.testing.assert_close(smoothed.animate(still).prediction, plain.animate(still).prediction)
    shifts = [torch.roll(base[1:], shifts=(s, -s), dims=(2, 3)) for s in (0, 2, 0, 2, 0, 2, 0, 2)]
    jitter = torch.cat(shifts)
    for animator in (plain, smoothed):
        animator.set_source(source)
    change = {
        name: (a.animate(jitter).prediction.diff(dim=0)).abs().mean() for name, a in (("plain", plain), ("s", smoothed))
    }
    assert change["s"] < 0.8 * change["plain"]


def _small_fomm():
    from dataclasses import replace

    from ostnet.config import DenseMotionConfig, KeypointDetectorConfig, model_preset

    cfg = model_preset("fomm-vox-256")
    cfg = replace(
        cfg,
        image_size=64,
        keypoints=KeypointDetectorConfig(num_kp=5, block_expansion=8, max_features=32, num_blocks=3, scale_factor=0.5),
        dense_motion=DenseMotionConfig(block_expansion=8, max_features=32, num_blocks=3, scale_factor=0.5),
        generator=replace(cfg.generator, block_expansion=8, max_features=32, num_bottleneck_blocks=1),
    )
    return build_model(cfg)


def test_animate_command_passes_motion_smoothing_to_the_animator(tmp_path):
    from ostnet.cli import build_parser
    from ostnet.commands.animate import options_from_args
    from ostnet.inference.pipeline import animator_for
    from ostnet.inference.smoothing import OneEuroSmoother

    argv = ["animate", "--source", "s.png", "--driving", "d.mp4", "--checkpoint", "c", "--output", "o.mp4"]
    args = build_parser().parse_args([*argv, "--motion-smooth", "one-euro"])
    options = options_from_args(args)
    assert options.motion_smooth == "one-euro"
    assert isinstance(animator_for(build_model("tiny"), options).smoother, OneEuroSmoother)
