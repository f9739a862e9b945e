"""OSTNet: the full model (paper Sec. 3.1, Fig. 2), composed from its networks.

    kp_S = F_kp(I_S), kp_D = F_kp(I_D)
    (z, C), I_D^ = ST(kp_S, kp_D, I_D)                (Sec. 3.2; skipped without ST)
    kp_D^ = F_kp(I_D^)                                 (keypoints of the rectified image, same detector)
    M_{S<-D^}, occlusion = DenseMotion(I_S, kp_S, kp_D^)
    I_rst = Generator(I_S, M, occlusion, z)            (Sec. 3.3; z only with SE)

No losses, no optimiser, no device moves here: those belong to ``ostnet.losses`` and ``ostnet.training``.
The per-step methods (``detect``, ``rectify``, ``prepare_source``, ``generate``) are what the Animator calls so
that work that depends only on the source is done once.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from ostnet.config import ModelConfig, model_preset
from ostnet.models.generator_fomm import FOMMGenerator
from ostnet.models.generator_ostnet import OSTNetGenerator
from ostnet.models.keypoint_detector import KeypointDetector
from ostnet.models.outputs import GeneratorOutput, Keypoints, ModelOutput, PreparedSource, ScaleTransformOutput
from ostnet.models.scale_transform import ScaleTransform


class DrivingFrames(NamedTuple):
    """Per-frame driving quantities: keypoints of I_D, the keypoints that drive the generator (those of I_D^
    with ST), the rectified image I_D^ (I_D without ST) and the ST output (None without ST)."""

    kp_driving: Keypoints
    kp_motion: Keypoints
    rectified: Tensor
    st: ScaleTransformOutput | None


class OSTNet(nn.Module):
    """Keypoint detector + optional scale transformation + generator (with the dense motion network inside).

    Parameter names: ``kp_detector.*`` and ``generator.*`` follow FOMM's checkpoint layout
    (reference-architecture.md §10); ``scale_transform.*`` and the generator's ``z_down``/``z_up`` are OSTNet's.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.kp_detector = KeypointDetector(cfg.keypoints, cfg.num_channels)
        st = cfg.scale_transform
        self.scale_transform = ScaleTransform(st, cfg.keypoints.num_kp) if st.enabled else None
        generator_cls = OSTNetGenerator if cfg.generator.kind == "ostnet" else FOMMGenerator
        self.generator = generator_cls(cfg)

    @property
    def has_scale_transform(self) -> bool:
        return self.scale_transform is not None

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    def check_images(self, **images: Tensor) -> None:
        """Raise ValueError naming the input if it is not (B, C, S, S) float in [0, 1] at the model's size."""
        c, s = self.cfg.num_channels, self.cfg.image_size
        for name, x in images.items():
            if x.dim() != 4 or x.shape[1] != c or tuple(x.shape[-2:]) != (s, s):
                raise ValueError(f"{name}: expected a (B, {c}, {s}, {s}) image batch, got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise ValueError(f"{name}: expected a float tensor in [0, 1], got {x.dtype}")
            lo, hi = x.detach().aminmax()
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise ValueError(f"{name}: values must be in [0, 1], got [{lo.item():.3f}, {hi.item():.3f}]")

    def detect(self, image: Tensor) -> Keypoints:
        return self.kp_detector(image)

    def rectify(self, kp_source: Keypoints, kp_driving: Keypoints, driving: Tensor) -> ScaleTransformOutput | None:
        """Sec. 3.2: the scale-rectified driving image and z, or None for models without ST."""
        if self.scale_transform is None:
            return None
        return self.scale_transform(kp_source.value, kp_driving.value, driving)

    def drive(self, kp_source: Keypoints, driving: Tensor, rectify: bool = True) -> DrivingFrames:
        """The per-frame part of Fig. 2 before the generator: F_kp(I_D), ST (Sec. 3.2), F_kp(I_D^).

        With ``rectify=False`` (the Animator's ``absolute`` mode) the driving keypoints drive the generator as
        they are; ST still runs when the model has it, because SE needs its z.
        """
        kp_driving = self.detect(driving)
        st = self.rectify(kp_source, kp_driving, driving)
        if st is None or not rectify:
            return DrivingFrames(kp_driving, kp_driving, driving, st)
        return DrivingFrames(kp_driving, self.detect(st.rectified), st.rectified, st)

    def prepare_source(self, source: Tensor, kp_source: Keypoints) -> PreparedSource:
        """Everything of the generator that depends on the source alone (computed once per source)."""
        return self.generator.prepare_source(source, kp_source)

    def embedding_code(self, z: Tensor | None) -> Tensor | None:
        """The z the generator receives: z with scale embedding (SE, Sec. 3.3), else None."""
        return z if self.cfg.generator.scale_embedding else None

    def generate(self, prepared: PreparedSource, kp_driving: Keypoints, z: Tensor | None) -> GeneratorOutput:
        return self.generator.forward_prepared(prepared, kp_driving, z)

    def forward(self, source: Tensor, driving: Tensor) -> ModelOutput:
        """source, driving: (B, C, S, S) in [0, 1] -> ModelOutput (prediction I_rst and all intermediates)."""
        self.check_images(source=source, driving=driving)
        kp_source = self.detect(source)
        frames = self.drive(kp_source, driving)
        st = frames.st
        z = None if st is None else st.z
        gen = self.generate(self.prepare_source(source, kp_source), frames.kp_motion, self.embedding_code(z))
        return self.output(kp_source, frames, gen)

    @staticmethod
    def output(kp_source: Keypoints, frames: DrivingFrames, gen: GeneratorOutput) -> ModelOutput:
        """The ModelOutput of one forward pass from its parts."""
        st = frames.st
        return ModelOutput(
            prediction=gen.prediction,
            rectified=frames.rectified,
            z=None if st is None else st.z,
            fiducial_points=None if st is None else st.fiducial,
            kp_source=kp_source,
            kp_driving=frames.kp_driving,
            kp_rectified=frames.kp_motion,
            deformation=gen.motion.deformation,
            occlusion=gen.motion.occlusion,
            deformed=gen.deformed,
            codebooks=gen.codebooks,
        )


def build_model(cfg: ModelConfig | str) -> OSTNet:
    """A freshly initialised model from a ModelConfig or a preset name (see ``ostnet presets``); a config with
    ``pechead.enabled`` builds a ``PECHead`` (a subclass with the same interface)."""
    cfg = model_preset(cfg) if isinstance(cfg, str) else cfg
    if cfg.pechead.enabled:
        from ostnet.models.pechead import PECHead

        return PECHead(cfg)
    return OSTNet(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
