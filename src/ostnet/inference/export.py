"""ONNX export of the Animator's steps (``ostnet export``) and an onnxruntime Animator (``--runtime onnx``).

Two graphs (three in ``relative`` mode), each the fp32 inference copy of the model (``optimize_for_inference``)
traced by ``torch.onnx.export`` (the TorchScript exporter):

* ``prepare.onnx``: the source-preparation step, source (1, 3, S, S) -> the per-source tensors (the source
  keypoints and the generator's prepared source, flattened as a pytree; their names are in the manifest);
* ``step.onnx``: the per-frame step ``FrameStep`` with the per-source tensors as graph inputs and a dynamic batch
  of driving frames (B, 3, S, S) -> prediction and rectified frames (B, 3, S, S);
* ``anchor.onnx`` (``relative`` mode only): ``FrameStep.motion`` of one anchor frame -> its keypoints.

A PECHead model runs as the PyTorch Animator runs it, with its pose and expression controls applied on the host
(``ControlState``, the same code) between two graphs: ``coefficients.onnx`` (a dynamic batch of driving frames ->
their coefficients R, the rectified frames and, with ST, z) and ``step.onnx`` (one frame's controlled coefficients,
CAP's state (NaN before the first frame) and the per-source tensors -> the prediction and CAP's new state).
``OnnxAnimator`` runs ``step.onnx`` frame by frame, in order, carrying the state. The landmark spline's linear
system is solved by ``geometry.matrix.solve_unrolled`` while the exporter traces (ONNX has no linear solver).

``manifest.json`` records the preset, the motion mode, the input and output names, the SHA-256 of the checkpoint
file (``--runtime onnx`` refuses a directory exported from another checkpoint) and the largest difference
between onnxruntime and PyTorch measured at export (at most ``TOLERANCE``, else the export fails).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from ostnet.errors import OstnetError
from ostnet.inference.animator import Animator, FrameBatch, FrameStep, resolve_mode
from ostnet.inference.controls import Controls, ControlState, check_controls
from ostnet.inference.fast import optimize_for_inference
from ostnet.inference.relative import movement_scale
from ostnet.io.atomic import AtomicFolder
from ostnet.io.native import silenced_stderr
from ostnet.models.ostnet import OSTNet
from ostnet.models.outputs import Keypoints
from ostnet.models.pechead import PECHead

TOLERANCE = 1e-4
OPSET = 17
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Layout(NamedTuple):
    """Where the tensors of a flattened pytree go back (None leaves, e.g. a missing Jacobian, are not inputs)."""

    spec: pytree.TreeSpec
    present: tuple[bool, ...]

    @property
    def count(self) -> int:
        return sum(self.present)


def flatten(tree: Any) -> tuple[list[Tensor], Layout]:
    leaves, spec = pytree.tree_flatten(tree)
    present = tuple(leaf is not None for leaf in leaves)
    return [leaf for leaf in leaves if leaf is not None], Layout(spec, present)


def unflatten(tensors: list[Tensor] | tuple[Tensor, ...], layout: Layout) -> Any:
    it = iter(tensors)
    return pytree.tree_unflatten([next(it) if p else None for p in layout.present], layout.spec)


class _Prepare(nn.Module):
    """source -> flat per-source tensors (source keypoints, prepared source)."""

    def __init__(self, model: OSTNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, source: Tensor) -> list[Tensor]:
        return flatten(_prepare_tree(self.model, source))[0]


class _Step(nn.Module):
    """frames, flat per-source tensors (+ anchor keypoints and movement scale) -> prediction, rectified."""

    def __init__(self, step: FrameStep, layout: Layout, anchor_layout: Layout | None) -> None:
        super().__init__()
        self.step, self.layout, self.anchor_layout = step, layout, anchor_layout

    def forward(self, frames: Tensor, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        n = self.layout.count
        kp, prepared = unflatten(inputs[:n], self.layout)
        anchor = scale = None
        if self.anchor_layout is not None:
            anchor = unflatten(inputs[n:-1], self.anchor_layout)
            scale = inputs[-1]
        return self.step(frames, kp, prepared, anchor, scale)


class _Anchor(nn.Module):
    """anchor frame, flat source keypoints -> the anchor's driving keypoints (``FrameStep.motion``)."""

    def __init__(self, step: FrameStep, kp_layout: Layout) -> None:
        super().__init__()
        self.step, self.kp_layout = step, kp_layout

    def forward(self, frame: Tensor, *kp: Tensor) -> list[Tensor]:
        kp_motion, _, _ = self.step.motion(frame, unflatten(kp, self.kp_layout))
        return flatten(kp_motion)[0]


class _Coefficients(nn.Module):
    """PECHead: frames, flat source keypoints -> the driving coefficients R, rectified frames (+ z with ST)."""

    def __init__(self, step: FrameStep, kp_layout: Layout) -> None:
        super().__init__()
        self.step, self.kp_layout = step, kp_layout

    def forward(self, frames: Tensor, *kp: Tensor) -> tuple[Tensor, ...]:
        kp_motion, rectified, z = self.step.motion(frames, unflatten(kp, self.kp_layout))
        return (kp_motion.coefficients, rectified) if z is None else (kp_motion.coefficients, rectified, z)


class _PosedStep(nn.Module):
    """PECHead: one frame's coefficients (+ z with ST) (+ CAP's state), flat per-source tensors -> prediction
    (+ CAP's new state)."""

    def __init__(self, step: FrameStep, layout: Layout, has_z: bool) -> None:
        super().__init__()
        self.step, self.layout, self.has_z = step, layout, has_z
        self.cap = step.model.generator.cap

    def forward(self, coefficients: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        z = None
        if self.has_z:
            z, inputs = inputs[0], inputs[1:]
        if self.cap is not None:
            self.cap.state, inputs = inputs[0], inputs[1:]
        kp, prepared = unflatten(inputs, self.layout)
        prediction = self.step.render(prepared, self.step.model.pose_keypoints(kp, coefficients), z)
        return (prediction,) if self.cap is None else (prediction, self.cap.state)


def blocking_operator(exc: BaseException) -> str | None:
    """The operator an export error names (``aten::linalg_inv``, ``aten.linalg_inv.default``...), if any."""
    text = f"{exc}\n{exc.__cause__ or ''}"
    match = re.search(r"aten(?:::|\.)([A-Za-z0-9_]+)", text) or re.search(r"of operator '?([A-Za-z0-9_]+)", text)
    return f"aten::{match.group(1)}" if match else None


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], batched: bool) -> None:
    """Trace ``module`` to ONNX (TorchScript exporter: the dynamo exporter took 2-3x longer here and needs
    onnxscript); with ``batched`` the first input and every output have a dynamic batch axis."""
    dynamic = {name: {0: "batch"} for name in (inputs[:1] + outputs)} if batched else None
    grad_mode = torch.is_grad_enabled()  # a failing TorchScript export can leave grad mode off: put it back
    try:
        # tracer warnings about Python shape checks (all static here); a failing export's C++ dump of the graph
        with warnings.catch_warnings(), silenced_stderr(stdout=True):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes=dynamic,
            )
    except Exception as exc:  # the exporter raises many types; name the blocking operator when it says one
        op = blocking_operator(exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = f"operator {op} cannot be exported to ONNX ({first[:160]})" if op else f"ONNX export failed: {first}"
        raise OstnetError(f"{path.stem} graph: {what}") from None
    finally:
        torch.set_grad_enabled(grad_mode)


def _sample_images(n: int, size: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=True)


class ExportSummary(NamedTuple):
    output: Path
    mode: str
    max_error: float
    files: tuple[str, ...]

    def line(self) -> str:
        return (
            f"exported {', '.join(self.files)} (mode {self.mode}); onnxruntime vs PyTorch max |diff| "
            f"{self.max_error:.1e} -> {self.output}"
        )


def export_onnx(model: OSTNet, checkpoint: Path, output: Path, mode: str = "auto") -> ExportSummary:
    """Export ``model`` (loaded from ``checkpoint``) into the folder ``output`` and check it with onnxruntime.

    The folder appears only when the export and the check succeeded. Raises ``OstnetError`` naming the operator
    that blocks the export, or the difference when onnxruntime disagrees with PyTorch by more than TOLERANCE.
    """
    mode = resolve_mode(model, mode)
    if isinstance(model, PECHead):
        return _export_pechead(model, checkpoint, output, mode)
    net = optimize_for_inference(model.cpu().eval())
    step = FrameStep(net, mode)
    size = model.cfg.image_size
    images = _sample_images(5, size, seed=0)
    source, frames = images[:1], images[1:]
    with torch.inference_mode():
        leaves, layout = flatten(_prepare_tree(net, source))
        kp = unflatten(leaves, layout)[0]
        anchor = scale = None
        if mode == "relative":
            anchor = step.motion(frames[:1], kp)[0]
            scale = torch.tensor(1.0)
    n = len(leaves)
    state_names = [f"source_{i}" for i in range(n)]
    manifest = _manifest(model, checkpoint, mode, state_names)
    with AtomicFolder(output) as folder:
        folder = Path(folder)
        _export(_Prepare(net), (source,), folder / "prepare.onnx", ["source"], state_names, False)
        step_inputs = [*leaves]
        names = ["frames", *state_names]
        anchor_layout = None
        if anchor is not None:
            anchor_leaves, anchor_layout = flatten(anchor)
            manifest["anchor_names"] = [f"anchor_{i}" for i in range(len(anchor_leaves))]
            step_inputs += [*anchor_leaves, scale]
            names += [*manifest["anchor_names"], "movement_scale"]
            kp_leaves, kp_layout = flatten(kp)
            manifest["kp_count"] = len(kp_leaves)
            _export(
                _Anchor(step, kp_layout),
                (frames[:1], *kp_leaves),
                folder / "anchor.onnx",
                ["frame", *state_names[: len(kp_leaves)]],
                manifest["anchor_names"],
                False,
            )
        _export(
            _Step(step, layout, anchor_layout),
            (frames, *step_inputs),
            folder / "step.onnx",
            names,
            ["prediction", "rectified"],
            True,
        )
        with torch.inference_mode():
            expected = step(frames, *unflatten(leaves, layout), anchor, scale)
        files = _check_and_write(folder, manifest, source, frames, expected)
    return ExportSummary(output, mode, manifest["max_error"], files)


def _manifest(model: OSTNet, checkpoint: Path, mode: str, state_names: list[str]) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "preset": model.cfg.name,
        "image_size": model.cfg.image_size,
        "mode": mode,
        "checkpoint_sha256": file_sha256(checkpoint),
        "state_names": state_names,
        "opset": OPSET,
    }


def _export_pechead(model: PECHead, checkpoint: Path, output: Path, mode: str) -> ExportSummary:
    """``export_onnx`` of a PECHead model: ``prepare``, ``coefficients`` and ``step`` graphs (module docstring),
    checked against the PyTorch Animator with its default controls. The model's temporal mode is kept."""
    with _video(model):  # the Animator that checks the graphs leaves its own mode
        return _export_pechead_graphs(model, checkpoint, output, mode)


def _export_pechead_graphs(model: PECHead, checkpoint: Path, output: Path, mode: str) -> ExportSummary:
    net = model.cpu().eval()
    step = FrameStep(net, mode)
    images = _sample_images(5, model.cfg.image_size, seed=0)
    source, frames = images[:1], images[1:]
    reference = Animator(net, device="cpu", mode=mode)
    reference.set_source(source)
    expected = tuple(reference.animate(frames))
    net.reset_state()
    with torch.no_grad():
        leaves, layout = flatten(_prepare_tree(net, source))
        kp = unflatten(leaves, layout)[0]
        kp_leaves, kp_layout = flatten(kp)
        motion = _Coefficients(step, kp_layout)(frames[:1], *kp_leaves)
    names = [f"source_{i}" for i in range(len(leaves))]
    manifest = _manifest(model, checkpoint, mode, names)
    manifest["coefficients_index"] = next(i for i, t in enumerate(leaves) if t is kp.coefficients)
    manifest["kp_count"] = len(kp_leaves)
    motion_names = ["coefficients", "rectified", "z"][: len(motion)]
    inputs, input_names, outputs = _posed_step_io(net, step, motion, motion_names, leaves, layout, manifest)
    with AtomicFolder(output) as folder:
        folder = Path(folder)
        _export(_Prepare(net), (source,), folder / "prepare.onnx", ["source"], names, False)
        _export(_Coefficients(step, kp_layout), (frames, *kp_leaves), folder / "coefficients.onnx",
                ["frames", *names[: len(kp_leaves)]], motion_names, True)  # fmt: skip
        with _video(net):
            step_graph = _PosedStep(step, layout, "z" in motion_names)
            _export(step_graph, (*inputs, *leaves), folder / "step.onnx", [*input_names, *names], outputs, False)
        files = _check_and_write(folder, manifest, source, frames, expected, clamp=True)
    return ExportSummary(output, mode, manifest["max_error"], files)


def _posed_step_io(
    net: PECHead, step: FrameStep, motion, motion_names: list[str], leaves: list[Tensor], layout: Layout, manifest
) -> tuple[list[Tensor], list[str], list[str]]:
    """The PECHead step graph's sample inputs before the per-source tensors, their names, and the output names;
    with CAP, its state's shape goes into the manifest (one frame run in the Animator's video mode)."""
    inputs = [motion[0], *motion[2:]]
    names, outputs = ["coefficients", *motion_names[2:]], ["prediction"]
    if net.generator.cap is not None:
        with _video(net), torch.no_grad():
            kp, prepared = unflatten(leaves, layout)
            step.render(prepared, net.pose_keypoints(kp, motion[0]), motion[2] if len(motion) > 2 else None)
            manifest["cap_state_shape"] = list(net.generator.cap.state.shape)
        inputs.append(torch.full(manifest["cap_state_shape"], float("nan")))
        names.append("cap_state")
        outputs.append("cap_state_out")
    return inputs, names, outputs


def _check_and_write(folder: Path, manifest: dict, source: Tensor, frames: Tensor, expected, clamp: bool = False):
    """Check the graphs in ``folder`` with onnxruntime, write the manifest; the graphs' file names."""
    manifest["max_error"] = _verify(folder, manifest, source, frames, expected, clamp)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return tuple(sorted(p.name for p in folder.glob("*.onnx")))


@contextmanager
def _video(net: PECHead) -> Iterator[None]:
    """PECHead in the Animator's ``video`` mode (CAP carries its state), from no state, for the block; then its
    mode as it was, with no state."""
    previous, net.temporal = net.temporal, "video"
    net.reset_state()
    try:
        yield
    finally:
        net.temporal = previous
        net.reset_state()


def _prepare_tree(net: OSTNet, source: Tensor) -> tuple[Keypoints, Any]:
    kp = net.detect(source)
    return kp, net.prepare_source(source, kp)


def _verify(
    folder: Path, manifest: dict, source: Tensor, frames: Tensor, expected: tuple[Tensor, Tensor], clamp: bool = False
) -> float:
    runtime = OnnxAnimator(folder, manifest=manifest)
    runtime.set_source(source)
    if runtime.mode == "relative":
        runtime.set_anchor(frames[:1])
    got = runtime.animate(frames, clamp=clamp)
    error = max(
        float((got.prediction - expected[0]).abs().max()),
        float((got.rectified - expected[1]).abs().max()),
    )
    if not error <= TOLERANCE:
        raise OstnetError(f"onnxruntime differs from PyTorch by {error:.2e} (> {TOLERANCE:g}); export not kept")
    return error


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise OstnetError(f"{folder}: not an ostnet ONNX export (no {MANIFEST}; run `ostnet export`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise OstnetError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise OstnetError(f"{path}: export format {manifest.get('format')!r}, expected {FORMAT_VERSION}")
    return manifest


class OnnxAnimator:
    """The Animator's interface (``set_source``, ``set_anchor``, ``animate``) on an exported folder, run by
    onnxruntime on the CPU: no PyTorch weights are loaded.

    Args:
        folder: an ``ostnet export`` output.
        checkpoint: if given, the folder must have been exported from this file (else ``OstnetError``).
        mode: if given and not ``auto``, must equal the exported mode.
        adapt_scale: FOMM's movement scale in ``relative`` mode (computed on the host from the anchor).
        controls: pose and expression controls (``ostnet.inference.controls``), for a PECHead export, applied on
            the host as the Animator applies them; another model's export refuses a changed one (OstnetError).
    """

    def __init__(
        self,
        folder: str | Path,
        checkpoint: str | Path | None = None,
        mode: str | None = None,
        adapt_scale: bool = False,
        threads: int | None = None,
        manifest: dict | None = None,
        controls: Controls | None = None,
    ) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.manifest = manifest if manifest is not None else read_manifest(self.folder)
        if checkpoint is not None and file_sha256(checkpoint) != self.manifest["checkpoint_sha256"]:
            raise OstnetError(
                f"{self.folder}: exported from another checkpoint than {checkpoint} "
                f"(preset {self.manifest['preset']}); export it again with `ostnet export`"
            )
        self.mode = self.manifest["mode"]
        if mode not in (None, "auto", self.mode):
            raise OstnetError(f"{self.folder}: exported for mode {self.mode}, not {mode}; export with --mode {mode}")
        self.adapt_scale = adapt_scale
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        try:
            self.sessions = {
                name: ort.InferenceSession(str(self.folder / f"{name}.onnx"), options, providers=providers)
                for name in ("prepare", "step", "anchor", "coefficients")
                if (self.folder / f"{name}.onnx").exists()
            }
        except Exception as exc:  # onnxruntime raises its own types, one per failure kind
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OstnetError(f"{self.folder}: onnxruntime cannot load the graphs ({first[:200]})") from None
        # the exporter drops graph inputs the graph does not use (e.g. the source image, which only the
        # visualisation output ``deformed`` reads): feed each session only what it declares
        self.inputs = {name: {i.name for i in session.get_inputs()} for name, session in self.sessions.items()}
        self.state: list[np.ndarray] | None = None
        self.anchor: list[np.ndarray] | None = None
        self.scale = np.float32(1.0)
        # PECHead: the controls, applied on the host as the Animator does, and CAP's state
        controls = Controls() if controls is None else controls
        check_controls("coefficients" in self.sessions, self.manifest["preset"], controls)
        if controls.edit_area != "whole":
            raise OstnetError("--edit-area local works with --runtime torch only")
        self.controls = ControlState(controls) if "coefficients" in self.sessions else None
        self.cap_state: np.ndarray | None = None

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def batch_size(self) -> int:
        return 8

    def set_source(self, source: Tensor) -> None:
        image = _numpy(source)[:1]
        self.state = self._run("prepare", {"source": image})
        self.anchor = None
        if self.controls is not None:
            self.controls.reset()
        if "cap_state_shape" in self.manifest:  # NaN: no state, the next frame starts the video (h_0 = f_0)
            self.cap_state = np.full(self.manifest["cap_state_shape"], np.nan, dtype=np.float32)

    def set_anchor(self, driving_frame: Tensor) -> None:
        if self.state is None:
            raise RuntimeError("set_source() first")
        n = self.manifest["kp_count"]
        names = self.manifest["state_names"][:n]
        feed = {"frame": _numpy(driving_frame)[:1], **dict(zip(names, self.state[:n], strict=True))}
        self.anchor = self._run("anchor", feed)
        scale = 1.0
        if self.adapt_scale:
            kp = Keypoints(*(torch.from_numpy(a) for a in self.state[:n]))
            scale = movement_scale(kp, Keypoints(*(torch.from_numpy(a) for a in self.anchor)))
        self.scale = np.float32(scale)

    def animate(
        self,
        driving: Tensor,
        pose_coefficients: None = None,
        expression_coefficients: None = None,
        *,
        clamp: bool = True,
    ) -> FrameBatch:
        """The Animator's ``animate``; the second drivers (``--pose-from``, ``--expression-from``) work with the
        PyTorch Animator only and must be None."""
        if pose_coefficients is not None or expression_coefficients is not None:
            raise OstnetError("--pose-from and --expression-from work with --runtime torch only")
        if self.state is None:
            raise RuntimeError("set_source() first")
        frames = _numpy(driving)
        if self.controls is not None:
            return self._controlled(frames, clamp)
        if self.mode == "relative" and self.anchor is None:
            self.set_anchor(driving[:1])
        feed = {"frames": frames, **dict(zip(self.manifest["state_names"], self.state, strict=True))}
        if self.mode == "relative":
            feed.update(zip(self.manifest["anchor_names"], self.anchor, strict=True))
            feed["movement_scale"] = np.asarray(self.scale, dtype=np.float32)
        prediction, rectified = (torch.from_numpy(a) for a in self._run("step", feed))
        return FrameBatch(prediction.clamp(0, 1) if clamp else prediction, rectified)

    def _controlled(self, frames: np.ndarray, clamp: bool) -> FrameBatch:
        """PECHead: the frames' coefficients through the controls, then the step graph frame by frame, in order,
        carrying CAP's state."""
        assert self.controls is not None and self.state is not None
        source = dict(zip(self.manifest["state_names"], self.state, strict=True))
        coefficients, rectified, *z = self._run("coefficients", {"frames": frames, **source})
        own = torch.from_numpy(coefficients)
        first = torch.from_numpy(self.state[self.manifest["coefficients_index"]])
        posed = self.controls.apply(first, own, own).numpy()
        predictions = []
        for i in range(len(frames)):
            feed = {"coefficients": posed[i : i + 1], **source}
            if z:
                feed["z"] = z[0][i : i + 1]
            if self.cap_state is not None:
                feed["cap_state"] = self.cap_state
            prediction, *state = self._run("step", feed)
            if state:
                self.cap_state = state[0]
            predictions.append(prediction)
        prediction = torch.from_numpy(np.concatenate(predictions))
        return FrameBatch(prediction.clamp(0, 1) if clamp else prediction, torch.from_numpy(rectified))

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        wanted = self.inputs[graph]
        return self.sessions[graph].run(None, {k: v for k, v in feed.items() if k in wanted})


def _numpy(images: Tensor) -> np.ndarray:
    if images.dim() == 3:
        images = images[None]
    return np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())


__all__ = ["OnnxAnimator", "blocking_operator", "export_onnx", "read_manifest"]
