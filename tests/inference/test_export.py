"""``ostnet export --format onnx`` and ``ostnet animate --runtime onnx``: the ONNX round trip for ``tiny`` and
``tiny-pechead``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ostnet.checkpoint import load_checkpoint, save_checkpoint
from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.geometry.matrix import solve_unrolled
from ostnet.geometry.tps import tps_kernel
from ostnet.inference.animator import Animator
from ostnet.inference.controls import Controls
from ostnet.inference.export import OnnxAnimator, _export, blocking_operator, read_manifest
from ostnet.io.image import load_image
from ostnet.models.ostnet import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    assert main(["export", str(tiny_checkpoint), "--format", "onnx", "--output", str(folder)]) == 0
    return folder


def _images(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=gen), size=(64, 64), mode="bilinear")


def test_export_round_trip_matches_pytorch(exported, tiny_checkpoint):
    """Fresh images (not those checked at export), batches of 1 and 3 (dynamic batch): onnxruntime == eager."""
    manifest = read_manifest(exported)
    assert manifest["mode"] == "anchor-free" and manifest["max_error"] <= 1e-4
    assert sorted(p.name for p in exported.iterdir()) == ["manifest.json", "prepare.onnx", "step.onnx"]
    images = _images(5, seed=7)
    eager = Animator(load_checkpoint(tiny_checkpoint), device="cpu", fast=False)
    onnx = OnnxAnimator(exported, tiny_checkpoint)
    for animator in (eager, onnx):
        animator.set_source(images[:1])
    for frames in (images[1:2], images[2:]):
        want, got = eager.animate(frames), onnx.animate(frames)
        assert got.prediction.shape == want.prediction.shape
        assert (got.prediction - want.prediction).abs().max() <= 1e-4
        assert (got.rectified - want.rectified).abs().max() <= 1e-4


def test_animate_with_onnx_runtime_equals_torch(exported, tiny_checkpoint, shared_dir, tmp_path, capsys):
    _same_frames_both_runtimes(tiny_checkpoint, exported, shared_dir, tmp_path, [])


def test_animate_a_pechead_export_with_controls(pechead_export, shared_dir, tmp_path, capsys):
    """``ostnet animate --runtime onnx --yaw 10 --smile 0.5`` on a PECHead export == the same with PyTorch."""
    checkpoint, folder = pechead_export
    _same_frames_both_runtimes(checkpoint, folder, shared_dir, tmp_path, ["--yaw", "10", "--smile", "0.5"])


def _same_frames_both_runtimes(checkpoint, exported, shared_dir, tmp_path, controls: list[str]) -> None:
    common = ["animate", "--quiet", "--no-crop", "--max-frames", "3", "--source",
              str(shared_dir / "data/portraits/s9.jpg"), "--driving", str(shared_dir / "data/clips/d0.mp4"),
              "--checkpoint", str(checkpoint), *controls]  # fmt: skip
    for runtime in ("torch", "onnx"):
        extra = ["--onnx-dir", str(exported)] if runtime == "onnx" else []
        out = tmp_path / runtime
        video = tmp_path / f"{runtime}.mp4"
        assert main([*common, "--runtime", runtime, *extra, "--output", str(video), "--frames", str(out)]) == 0
    frames = sorted((tmp_path / "torch").glob("*.png"))
    assert len(frames) == 3
    for path in frames:
        a, b = load_image(path).astype(int), load_image(tmp_path / "onnx" / path.name).astype(int)
        assert np.abs(a - b).max() <= 1


def test_onnx_dir_of_another_checkpoint_is_one_line(exported, tmp_path, shared_dir, capsys):
    torch.manual_seed(1)
    other = save_checkpoint(build_model("tiny"), tmp_path / "other.safetensors")
    rc = main(["animate", "--quiet", "--no-crop", "--source", str(shared_dir / "data/portraits/s9.jpg"),
               "--driving", str(shared_dir / "data/clips/d0.mp4"), "--checkpoint", str(other),
               "--output", str(tmp_path / "o.mp4"), "--runtime", "onnx", "--onnx-dir", str(exported)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "exported from another checkpoint" in err[0]
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(OstnetError, match="not an ostnet ONNX export"):
        OnnxAnimator(tmp_path, other)


class _Inverse(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.inverse(x)


def test_a_blocking_operator_is_named(tmp_path, capfd):
    """torch.inverse (what the dense motion used before the closed-form 2x2 inverse) has no ONNX conversion. The
    error is the one line: the exporter's C++ dump of the whole graph (to file descriptor 1) is not shown."""
    with pytest.raises(OstnetError, match=r"operator aten::linalg_inv cannot be exported"):
        _export(_Inverse(), (torch.eye(2)[None],), tmp_path / "inv.onnx", ["x"], ["y"], False)
    assert capfd.readouterr() == ("", "")
    assert blocking_operator(RuntimeError("no symbolic for aten.foo_bar.default")) == "aten::foo_bar"
    assert blocking_operator(RuntimeError("ONNX export of operator adaptive_avg_pool2d, input size")) == (
        "aten::adaptive_avg_pool2d"
    )
    assert blocking_operator(RuntimeError("something else")) is None


@pytest.fixture(scope="module")
def pechead_export(tmp_path_factory):
    """An untrained tiny-pechead (CAP's gate starts at tanh 0.55 = 0.5, so its state matters) and its export."""
    folder = tmp_path_factory.mktemp("onnx-pechead")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model("tiny-pechead"), folder / "p.safetensors")
    assert main(["export", str(checkpoint), "--output", str(folder / "out")]) == 0
    return checkpoint, folder / "out"


def test_pechead_export_equals_the_torch_animator_with_controls(pechead_export):
    """PECHead exports (the landmark spline's solve unrolled): onnxruntime gives what the PyTorch Animator gives
    with the same controls, over calls of 3 and then 5 frames, and again after ``set_source`` restarts the video.
    Between calls both hold the same state: CAP's (the bottleneck after the last frame) and the relative pose's
    first driving frame."""
    checkpoint, folder = pechead_export
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["coefficients.onnx", "prepare.onnx", "step.onnx"]
    controls = Controls(yaw=10.0, mouth_open=0.5)
    images = _images(9, seed=5)
    eager = Animator(load_checkpoint(checkpoint), device="cpu", controls=controls)
    onnx = OnnxAnimator(folder, checkpoint, controls=controls)
    results = []
    for animator in (eager, onnx):
        animator.set_source(images[:1])
        results.append([animator.animate(images[1:4]).prediction])
    cap = eager.model.generator.cap
    assert cap.state is not None and np.isfinite(onnx.cap_state).all()
    assert np.abs(onnx.cap_state - cap.state.numpy()).max() <= 1e-4
    assert torch.allclose(onnx.controls.first_pose, eager.control_state.first_pose, atol=1e-5)
    for animator, out in zip((eager, onnx), results, strict=True):
        out.append(animator.animate(images[4:]).prediction)
    want, got = torch.cat(results[0]), torch.cat(results[1])
    assert want.shape == got.shape == (8, 3, 64, 64) and (want - got).abs().max() <= 1e-4
    onnx.set_source(images[:1])
    assert np.isnan(onnx.cap_state).all() and onnx.controls.first_pose is None
    assert (onnx.animate(images[1:3]).prediction - want[:2]).abs().max() <= 1e-4


def test_pechead_export_leaves_the_model_as_it_was(tmp_path):
    """Exporting runs the model in the Animator's video mode and checks it with an Animator: afterwards its
    temporal mode is what it was and CAP holds no state."""
    from ostnet.inference.export import export_onnx

    torch.manual_seed(0)
    model = build_model("tiny-pechead").eval()
    checkpoint = save_checkpoint(model, tmp_path / "p.safetensors")
    model.temporal = "clips"
    export_onnx(model, checkpoint, tmp_path / "out")
    assert model.temporal == "clips" and model.generator.cap.state is None


def test_onnx_runtime_refuses_controls_a_model_cannot_honour(exported, tiny_checkpoint, pechead_export):
    with pytest.raises(OstnetError, match=r"^--yaw: model 'tiny' cannot honour it"):
        OnnxAnimator(exported, tiny_checkpoint, controls=Controls(yaw=5.0))
    checkpoint, folder = pechead_export
    with pytest.raises(OstnetError, match=r"^--edit-area local works with --runtime torch only"):
        OnnxAnimator(folder, checkpoint, controls=Controls(smile=0.5, edit_area="local"))


def test_an_unloadable_graph_is_one_line(exported, tiny_checkpoint, tmp_path):
    """onnxruntime's own error on a damaged graph becomes one OstnetError line."""
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "step.onnx").write_bytes(b"not a graph")
    with pytest.raises(OstnetError, match=r"onnxruntime cannot load the graphs") as info:
        OnnxAnimator(broken, tiny_checkpoint)
    assert "\n" not in str(info.value)


def test_solve_unrolled_equals_linalg_solve():
    """Gauss-Jordan with partial pivoting == torch.linalg.solve: a random system, and a thin-plate spline's, whose
    zero diagonal block needs the row swaps (without them the first zero pivot divides by zero)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 9, 9, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 9, 2, generator=gen, dtype=torch.float64)
    assert torch.allclose(solve_unrolled(a, b), torch.linalg.solve(a, b), atol=1e-10)
    points = torch.rand(2, 6, 2, generator=gen, dtype=torch.float64) * 2 - 1
    affine = torch.cat([torch.ones(2, 6, 1, dtype=torch.float64), points], dim=2)
    tps = torch.cat([torch.cat([torch.zeros(2, 3, 3, dtype=torch.float64), affine.transpose(1, 2)], 2),
                     torch.cat([affine, tps_kernel(torch.cdist(points, points) ** 2)], 2)], 1)  # fmt: skip
    rhs = torch.randn(2, 9, 2, generator=gen, dtype=torch.float64)
    assert tps[0, 0, 0] == 0
    assert torch.allclose(solve_unrolled(tps, rhs), torch.linalg.solve(tps, rhs), atol=1e-9)


def test_a_failed_export_restores_grad_mode(tmp_path, monkeypatch):
    """An exporter that fails after switching grad mode off (seen with onnx missing) must not leave it off for
    everything that runs after it in the process."""

    def failing_export(*args, **kwargs):
        torch.set_grad_enabled(False)
        raise RuntimeError("Module onnx is not installed!")

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    with pytest.raises(OstnetError, match="ONNX export failed: Module onnx is not installed"):
        _export(_Inverse(), (torch.eye(2)[None],), tmp_path / "inv.onnx", ["x"], ["y"], False)
    assert torch.is_grad_enabled()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_export_other_modes(tiny_checkpoint, tmp_path, mode):
    from ostnet.inference.export import export_onnx

    summary = export_onnx(load_checkpoint(tiny_checkpoint), tiny_checkpoint, tmp_path / mode, mode)
    assert summary.mode == mode and summary.max_error <= 1e-4
    onnx = OnnxAnimator(tmp_path / mode, tiny_checkpoint, adapt_scale=mode == "relative")
    eager = Animator(load_checkpoint(tiny_checkpoint), device="cpu", fast=False, mode=mode, adapt_scale=True)
    images = _images(4, seed=3)
    for animator in (eager, onnx):
        animator.set_source(images[:1])
    assert (onnx.animate(images[1:]).prediction - eager.animate(images[1:]).prediction).abs().max() <= 1e-4
