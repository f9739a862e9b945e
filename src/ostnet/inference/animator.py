"""The Animator: the one per-frame animation step, shared by ``ostnet animate``, evaluation, the demo and the
web app.

It works on model-sized tensors (B, 3, S, S) in [0, 1]; file decoding, face cropping, paste-back and encoding
live in ``ostnet.inference.pipeline``.

Motion modes (reference-architecture.md §8 and paper Sec. 1):

* ``anchor-free`` (OSTNet): each driving frame is rectified to the source's scale by the scale transformation
  (Sec. 3.2) and its keypoints drive the generator directly. Needs a model with ST.
* ``relative`` (FOMM): the motion of each frame relative to an anchor frame is added to the source keypoints,
  with ``adapt_scale`` optionally rescaling it by the keypoint hull areas. With an ST model the keypoints of
  the rectified frames are used.
* ``absolute``: the driving keypoints as they are, with no rectification (the FOMM reconstruction protocol).
  SE models still receive their scale code z.

The default (``auto``) is anchor-free for models with ST and relative for the others.

The per-frame step itself is ``FrameStep``, a module of tensors only (no host work, no synchronisation): the
Animator runs it, ``ostnet export`` exports it to ONNX. By default (``fast=True``) it runs on the inference copy
of the model made by ``ostnet.inference.fast.optimize_for_inference`` (batch norm folded, sub-pixel up blocks,
channels-last, bf16 weights under bf16), which computes the same function as the model itself (fp32: within
1e-5; tests/inference/test_fast.py). ``fast=False`` runs the model as it is.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ostnet.errors import OstnetError
from ostnet.inference.controls import Controls, ControlState, check_supported, local_edit_mask
from ostnet.inference.fast import optimize_for_inference, packing_available
from ostnet.inference.relative import movement_scale, relative_motion
from ostnet.inference.smoothing import SmoothingConfig, make_smoother, smooth_tensors
from ostnet.models.device import resolve_device
from ostnet.models.ostnet import OSTNet
from ostnet.models.outputs import Keypoints, PreparedSource
from ostnet.models.precision import DTYPES, autocast

Mode = Literal["auto", "anchor-free", "relative", "absolute"]
MODES = ("auto", "anchor-free", "relative", "absolute")


class SourceState(NamedTuple):
    """Everything that depends on the source alone, computed once (``Animator.set_source``)."""

    image: Tensor  # (1, 3, S, S)
    kp: Keypoints
    prepared: PreparedSource  # the generator's per-source work


class FrameBatch(NamedTuple):
    """prediction and rectified driving frames, (B, 3, S, S) float32 in [0, 1] on the CPU or the device."""

    prediction: Tensor
    rectified: Tensor


def default_batch_size(device: torch.device, image_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Frames per model call for a device: 8 on CPUs and MPS (the time per frame hardly falls beyond), on CUDA
    the power of two that fills about half of the free memory at an estimated 160 MB per 256 px frame in fp32
    (half in bf16; an estimate from the activation sizes, not measured on a GPU), between 8 and 256."""
    if device.type != "cuda":
        return 8
    free, _ = torch.cuda.mem_get_info(device)
    per_frame = 160e6 * (image_size / 256) ** 2 * (0.5 if dtype != torch.float32 else 1.0)
    fit = max(1, int(0.5 * free / per_frame))
    return max(8, min(256, 1 << (fit.bit_length() - 1)))


def resolve_mode(model: OSTNet, mode: Mode) -> str:
    if mode not in MODES:
        raise OstnetError(f"unknown motion mode {mode!r}; choose one of {', '.join(MODES)}")
    if getattr(model, "controllable", False) and mode in ("auto", "relative"):
        # PECHead: its pose controls do relative driving (in coefficient space); keypoints are posed absolutely.
        return "anchor-free" if model.has_scale_transform else "absolute"
    if mode == "auto":
        return "anchor-free" if model.has_scale_transform else "relative"
    if mode == "anchor-free" and not model.has_scale_transform:
        raise OstnetError(
            f"mode anchor-free needs a model with the scale transformation; {model.cfg.name!r} has none "
            "(use --mode relative or absolute)"
        )
    return mode


def anchorless_mode(model: OSTNet) -> str:
    """The motion mode that needs no anchor frame: ``anchor-free`` with ST, else ``absolute`` (evaluation pairs,
    and the demo's default)."""
    return "anchor-free" if model.has_scale_transform else "absolute"


def _expand(value, batch: int):
    """Expand every tensor of a (nested) NamedTuple from batch 1 (or ``batch``) to ``batch`` (no copy)."""
    if isinstance(value, Tensor):
        return value.expand(batch, *value.shape[1:])
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_expand(v, batch) for v in value))
    return value


class FrameStep(nn.Module):
    """The per-frame step, tensors in and out: F_kp(I_D), ST and F_kp(I_D^) (``OSTNet.drive``), the relative
    keypoints of ``relative`` mode, the generator on the prepared source.

    ``forward(frames, kp, prepared, anchor=None, scale=None) -> (prediction, rectified)``: frames (B, 3, S, S);
    kp and prepared from ``set_source`` (batch 1, expanded here, or batch B); anchor the anchor frame's keypoints
    and scale FOMM's movement scale (a tensor) in ``relative`` mode, else None. It is ``motion`` then ``render``;
    the Animator calls the two itself to smooth the motion in between (``motion_smooth``).
    """

    def __init__(self, model: OSTNet, mode: str) -> None:
        super().__init__()
        self.model = model
        self.mode = mode

    def forward(
        self, frames: Tensor, kp: Keypoints, prepared, anchor: Keypoints | None = None, scale: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        kp_motion, rectified, z = self.motion(frames, kp, anchor, scale)
        return self.render(prepared, kp_motion, z), rectified

    def motion(
        self, frames: Tensor, kp: Keypoints, anchor: Keypoints | None = None, scale: Tensor | None = None
    ) -> tuple[Keypoints, Tensor, Tensor | None]:
        """The keypoints that drive the generator, the rectified frames and z (None without ST)."""
        batch = frames.shape[0]
        kp, anchor = _expand(kp, batch), _expand(anchor, batch)
        driven = self.model.drive(kp, frames, rectify=self.mode != "absolute")
        kp_motion = driven.kp_motion
        if anchor is not None:
            kp_motion = relative_motion(kp, kp_motion, anchor, 1.0 if scale is None else scale)
        return kp_motion, driven.rectified, None if driven.st is None else driven.st.z

    def render(self, prepared, kp_motion: Keypoints, z: Tensor | None) -> Tensor:
        """The generator on the prepared source (expanded to the batch): the predictions (B, 3, S, S)."""
        prepared = _expand(prepared, kp_motion.value.shape[0])
        return self.model.generate(prepared, kp_motion, self.model.embedding_code(z)).prediction


class Animator:
    """Animate a source image with driving frames.

    Args:
        model: an OSTNet (any preset or a converted FOMM model); it is put in eval mode and moved to ``device``.
        device: ``auto`` (or None: the best available), ``cpu``, ``cuda`` or ``mps`` (``ostnet.models.device``).
        dtype: ``fp32``, ``bf16`` or ``fp16`` (autocast; the weights stay fp32).
        mode: motion mode (see the module docstring).
        adapt_scale: for ``relative``, scale the motion by the keypoint hull areas (FOMM's adapt_movement_scale).
        motion_smooth: temporal smoothing of the driving motion (keypoints, Jacobians, z) in ``animate``: a
            method name (``none``, ``ema``, ``kalman``, ``one-euro``) or a ``SmoothingConfig``. Its state
            carries from call to call and restarts with ``set_source``. ``animate_pairs`` never smooths.
        fast: run the inference copy of the model (``optimize_for_inference``); False runs the model as it is.
            PECHead models always run as they are (their temporal state lives in the model).
        controls: pose and expression controls (``ostnet.inference.controls``), for PECHead models; a model
            that cannot honour one is an OstnetError naming it. PECHead's temporal module (CAP) carries its
            state through ``animate`` calls and restarts with ``set_source``.
    """

    def __init__(
        self,
        model: OSTNet,
        device: str | None = None,
        dtype: str = "fp32",
        mode: Mode = "auto",
        adapt_scale: bool = False,
        motion_smooth: SmoothingConfig | str = "none",
        fast: bool = True,
        controls: Controls | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise OstnetError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        self.precision = dtype
        self.model = model.eval().to(self.device)
        self.mode = resolve_mode(model, mode)
        self.adapt_scale = adapt_scale
        self.smoother = make_smoother(motion_smooth)
        self.controllable = bool(getattr(model, "controllable", False))
        self.controls = Controls() if controls is None else controls
        check_supported(model, self.controls)
        self.control_state = ControlState(self.controls)
        fast = fast and not self.controllable
        self.fast = fast
        packed = self.device.type == "cpu" and self.dtype == torch.float32 and packing_available()
        self.net = self.model
        if fast:
            self.net = optimize_for_inference(
                self.model, dtype=self.dtype, channels_last=True, packed=packed, hoist=True
            )
        self.step = FrameStep(self.net, self.mode)
        self.source: SourceState | None = None
        self.anchor: Keypoints | None = None
        self.scale: Tensor | None = None

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @property
    def batch_size(self) -> int:
        """Frames per model call sized to the device (``default_batch_size``)."""
        return default_batch_size(self.device, self.image_size, self.dtype)

    def _autocast(self):
        return autocast(self.device.type, self.precision)

    def _to_device(self, images: Tensor, name: str) -> Tensor:
        s = self.image_size
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (s, s):
            raise OstnetError(f"{name}: expected (B, 3, {s}, {s}) frames, got {tuple(images.shape)}")
        images = images.to(self.device, torch.float32)
        return images.contiguous(memory_format=torch.channels_last) if self.fast else images

    @torch.inference_mode()
    def set_source(self, source: Tensor) -> SourceState:
        """Compute and cache the per-source work (keypoints, generator preparation). source: (1, 3, S, S)."""
        image = self._to_device(source, "source")[:1]
        self.source = self._prepare(image)
        self.anchor = self.scale = None
        self.smoother.reset()
        self.control_state.reset()
        if self.controllable:
            self.net.reset_state()
        return self.source

    def _prepare(self, image: Tensor) -> SourceState:
        with self._autocast():
            kp = self.net.detect(image)
            return SourceState(image, kp, self.net.prepare_source(image, kp))

    @torch.inference_mode()
    def set_anchor(self, driving_frame: Tensor) -> None:
        """Fix the anchor frame of ``relative`` mode (FOMM's first or best-aligned driving frame)."""
        if self.source is None:
            raise RuntimeError("set_source() first")
        frame = self._to_device(driving_frame, "anchor")[:1]
        with self._autocast():
            self.anchor = self.net.drive(self.source.kp, frame, rectify=self.mode != "absolute").kp_motion
        scale = movement_scale(self.source.kp, self.anchor) if self.adapt_scale else 1.0
        self.scale = torch.tensor(scale, device=self.device)

    @torch.inference_mode()
    def animate(
        self, driving: Tensor, pose_coefficients: Tensor | None = None, expression_coefficients: Tensor | None = None
    ) -> FrameBatch:
        """Animate the cached source with a batch of driving frames (B, 3, S, S), in video order.

        PECHead models: ``pose_coefficients`` / ``expression_coefficients`` (B, D) drive the pose / the expression
        instead of the driving frames' own (a second driving video: ``coefficients``).
        """
        if self.source is None:
            raise RuntimeError("set_source() first")
        frames = self._to_device(driving, "driving")
        if self.mode == "relative" and self.anchor is None:
            self.set_anchor(frames[:1])
        return self._step(self.source, frames, smooth=True, drivers=(pose_coefficients, expression_coefficients))

    @torch.inference_mode()
    def coefficients(self, frames: Tensor) -> Tensor:
        """Face coefficients R (B, D) of model-sized frames (PECHead models), e.g. of a second driving video."""
        frames = self._to_device(frames, "frames")
        with self._autocast():
            return self.net.coefficients(frames).float()

    @torch.inference_mode()
    def edit(self) -> Tensor:
        """The cached source with the Animator's controls applied (a still-image edit): (1, 3, S, S)."""
        if self.source is None:
            raise RuntimeError("set_source() first")
        self.control_state.reset()
        state = self.source
        with self._autocast():
            kp, reference = self._controlled(state, state.kp, (None, None))
            _, _, z = self.step.motion(state.image, state.kp)  # SE models: the source's own scale code
            self.net.temporal = "none"
            base = None  # local edits at the source's own R: outside the edits the picture is the source itself
            if reference is not None and torch.allclose(reference.coefficients, state.kp.coefficients, atol=1e-5):
                base = state.image
            prediction = self._render(state.prepared, kp, z, reference, base)
        return prediction.float().clamp(0, 1)

    @torch.inference_mode()
    def animate_pairs(self, source: Tensor, driving: Tensor, anchor: Tensor | None = None) -> Tensor:
        """One result per (source, driving) pair, each pair independent (evaluation protocols): pair i gives
        what ``set_source(source[i])``, then ``animate(driving[i])`` gives (never smoothed).

        ``relative`` mode needs ``anchor`` frames, (B, 3, S, S) or one (1, 3, S, S) for all pairs: pair i is
        animated with ``anchor[i]`` as its relative anchor, i.e. the motion from the anchor to ``driving[i]``
        is added to ``source[i]``'s keypoints (as ``set_anchor(anchor[i])`` does for a video; with
        ``adapt_scale``, scaled by each pair's own hull-area ratio). Without one it is an ``OstnetError``: a
        pair alone has no anchor frame (``anchorless_mode`` is the mode that needs none). The other modes take
        no anchor.
        """
        src = self._to_device(source, "source")
        frames = self._to_device(driving, "driving")
        if len(src) != len(frames):
            raise OstnetError(f"animate_pairs: {len(src)} sources but {len(frames)} driving frames")
        if (anchor is None) == (self.mode == "relative"):
            need = "needs anchor frames (the motion is relative to them)" if anchor is None else "takes no anchor"
            raise OstnetError(f"animate_pairs: mode {self.mode} {need}")
        state = self._prepare(src)
        if anchor is None:
            return self._step(state, frames, relative=False, temporal=False).prediction
        anchors = self._to_device(anchor, "anchor")
        if len(anchors) not in (1, len(src)):
            raise OstnetError(f"animate_pairs: {len(anchors)} anchor frames for {len(src)} pairs")
        with self._autocast():
            anchor_kp = self.net.drive(state.kp, anchors.expand_as(frames), rectify=True).kp_motion
        scale = torch.ones(len(src), 1, 1)
        if self.adapt_scale:  # FOMM's hull-area ratio, of each pair's own source and anchor
            values = zip(state.kp.value.split(1), anchor_kp.value.split(1), strict=True)
            scale = torch.tensor([movement_scale(Keypoints(kp), Keypoints(kp_anchor)) for kp, kp_anchor in values])
        anchor = (anchor_kp, scale.view(-1, 1, 1).to(self.device))
        return self._step(state, frames, temporal=False, anchor=anchor).prediction

    def _controlled(self, state: SourceState, kp_motion, drivers: tuple[Tensor | None, Tensor | None]):
        """PECHead: the coefficients of the drivers through the controls, then the source posed with them; and,
        with local expression edits (``Controls.local_edits``), the source posed without the edits (else None)."""
        own = kp_motion.coefficients
        pose, expression = (own if d is None else d.to(own.device, own.dtype) for d in drivers)
        source = state.kp.coefficients[:1]
        kp = self.net.pose_keypoints(state.kp, self.control_state.apply(source, pose, expression))
        if not self.controls.local_edits:
            return kp, None
        unedited = self.control_state.apply(source, pose, expression, with_edits=False)
        return kp, self.net.pose_keypoints(state.kp, unedited)

    def _render(self, prepared, kp, z: Tensor | None, reference=None, base: Tensor | None = None) -> Tensor:
        """The generator's picture for ``kp``. With a ``reference`` (the keypoints without the expression edits,
        ``edit_area`` local) also the picture for it, from the same temporal state, and the edits' change only
        where they move the landmarks: (``base`` or the reference's picture) + mask (edited - reference's)."""
        if reference is None:
            return self.step.render(prepared, kp, z)
        with self.net.temporal_state_kept():
            unedited = self.step.render(prepared, reference, z)
        edited = self.step.render(prepared, kp, z)
        mask = local_edit_mask(self.net, kp.landmarks, reference.landmarks, *edited.shape[-2:]).to(edited.dtype)
        return (unedited if base is None else base.to(edited.dtype)) + mask * (edited - unedited)

    def _step(
        self,
        state: SourceState,
        frames: Tensor,
        relative: bool = True,
        smooth: bool = False,
        drivers: tuple[Tensor | None, Tensor | None] = (None, None),
        temporal: bool = True,
        anchor: tuple[Keypoints, Tensor] | None = None,
    ) -> FrameBatch:
        """``temporal``: a video in order (controls, CAP state); False for independent pairs. ``anchor``
        (keypoints, movement scale) overrides the Animator's own (``animate_pairs``)."""
        anchor_kp, scale = anchor if anchor is not None else (self.anchor, self.scale)
        if anchor is None and not (relative and self.mode == "relative"):
            anchor_kp = None
        with self._autocast():
            kp_motion, rectified, z = self.step.motion(frames, state.kp, anchor_kp, scale)
            reference = None
            if self.controllable:
                if temporal:
                    kp_motion, reference = self._controlled(state, kp_motion, drivers)
                self.net.temporal = "video" if temporal else "none"
            if smooth:  # the positions that drive the generator (and PECHead's landmarks), and z
                names = [n for n in ("value", "jacobian", "landmarks") if n in kp_motion._fields]
                *fields, z = smooth_tensors(self.smoother, [*(getattr(kp_motion, n) for n in names), z])
                smoothed = kp_motion._replace(**dict(zip(names, fields, strict=True)))
                if reference is not None:  # the same correction: the edits' offset is not smoothed away
                    moved = [n for n in names if getattr(kp_motion, n) is not None]
                    shift = {n: getattr(reference, n) + getattr(smoothed, n) - getattr(kp_motion, n) for n in moved}
                    reference = reference._replace(**shift)
                kp_motion = smoothed
            prediction = self._render(state.prepared, kp_motion, z, reference)
        return FrameBatch(prediction.float().clamp(0, 1), rectified.float())
