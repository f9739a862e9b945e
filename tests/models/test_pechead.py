"""PECHead (models/pechead.py) and its controls (inference/controls.py): identities the design guarantees."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from ostnet.checkpoint import load_checkpoint, save_checkpoint
from ostnet.config import apply_overrides, model_preset, train_preset
from ostnet.errors import OstnetError
from ostnet.face.coefficients import LANDMARK_NAMES, landmark_expression_basis
from ostnet.geometry.grid import make_coordinate_grid
from ostnet.geometry.rotation import rotate_points_2d
from ostnet.geometry.tps import tps_flow
from ostnet.geometry.warp import warp
from ostnet.inference.animator import Animator, _expand
from ostnet.inference.controls import (
    Controls,
    ControlState,
    local_edit_mask,
    parse_pose,
    parse_regions,
    supported_controls,
)
from ostnet.losses.objective import expression_region_loss
from ostnet.models.ostnet import build_model
from ostnet.models.pechead import (
    PLACEMENT,
    FeatureFusion,
    PECHead,
    TemporalContext,
    expression_heat,
    landmark_support,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> PECHead:
    torch.manual_seed(0)
    m = build_model("tiny-pechead").eval()
    with torch.no_grad():  # a non-trivial expression deformation (it starts at zero)
        for p in m.kp_detector.conditioned.deform.parameters():
            p.normal_(0, 0.05)
    return m


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(9, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=True)


def _animator(model, **kw) -> Animator:
    return Animator(model, device="cpu", **kw)


def test_driving_with_the_source_coefficients_reproduces_the_source_keypoints(model, frames):
    with torch.no_grad():
        kp_source = model.detect(frames[:1])
        driven = model.drive(kp_source, frames[1:2], coefficients=kp_source.coefficients)
    assert torch.equal(driven.kp_motion.value, kp_source.value)
    assert torch.equal(driven.kp_motion.landmarks, kp_source.landmarks)


@pytest.mark.parametrize("theta", [15.0, -30.0])
def test_roll_edit_rotates_keypoints_and_landmarks_by_theta(model, frames, theta):
    with torch.no_grad():
        kp = model.detect(frames[:1])
        own = kp.coefficients
        rolled = model.pose_keypoints(kp, ControlState(Controls(roll=theta)).apply(own, own, own))
    centre = own[:, None, PLACEMENT][..., :2]
    for before, after in ((kp.value, rolled.value), (kp.landmarks, rolled.landmarks)):
        torch.testing.assert_close(after, rotate_points_2d(before, theta, centre), atol=1e-5, rtol=0)


def test_zero_edits_give_plain_animation(model, frames):
    """Controls that change nothing = the model's own per-frame driving (drive + generate, CAP on)."""
    source, driving = frames[:1], frames[1:]
    edited = _animator(model, controls=Controls(pose="absolute", yaw=0.0, smile=0.0, expression_scale=1.0))
    edited.set_source(source)
    got = edited.animate(driving).prediction
    with torch.no_grad():
        model.reset_state()
        model.temporal = "video"
        kp = _expand(model.detect(source), len(driving))
        prepared = _expand(model.prepare_source(source, model.detect(source)), len(driving))
        expected = model.generate(prepared, model.drive(kp, driving).kp_motion, None).prediction.clamp(0, 1)
    assert torch.equal(got, expected)
    # Relative driving whose first frame is the source itself: the same, up to rotation round-off.
    relative = _animator(model)
    relative.set_source(source)
    torch.testing.assert_close(relative.animate(torch.cat([source, driving])).prediction[1:], got, atol=2e-4, rtol=0)


def test_still_edit_with_zero_controls_is_the_self_reconstruction(model, frames):
    animator = _animator(model)
    animator.set_source(frames[:1])
    torch.testing.assert_close(animator.edit(), animator.animate_pairs(frames[:1], frames[:1]), atol=2e-4, rtol=0)
    edited = _animator(model, controls=Controls(yaw=20.0, mouth_open=0.5))
    edited.set_source(frames[:1])
    assert (edited.edit() - animator.edit()).abs().max() > 1e-3  # an edit changes the (untrained) picture


def test_landmark_support_covers_both_places_of_a_moved_landmark_and_nothing_else():
    """Analytic: one landmark moves down by d on a 33 x 33 grid (pixel centres at multiples of 1/16); the support
    is min(1, d / saturation) times the larger Gaussian of its two places, which the heat difference is not: it is
    0 half-way, where the support is exp(-(d/2)^2 / 2 var). A landmark that stays adds nothing."""
    var, d, size = 0.01, 0.25, 33
    reference = torch.tensor([[[0.0, 0.0], [0.5, -0.5]]])
    moved = reference + torch.tensor([[[0.0, d], [0.0, 0.0]]])
    grid = make_coordinate_grid(size, size)
    near = [(-0.5 * ((grid - torch.tensor(p)) ** 2).sum(-1) / var).exp() for p in ([0.0, 0.0], [0.0, d])]
    for saturation, weight in ((0.1, 1.0), (0.5, 0.5)):
        support = landmark_support(moved, reference, size, size, var, saturation)[0, 0]
        torch.testing.assert_close(support, weight * torch.maximum(*near))
        half_way = support[16 + 2, 16]  # y = 2/16 = d/2
        assert half_way == pytest.approx(weight * math.exp(-((d / 2) ** 2) / (2 * var)), rel=1e-5)
    heat = expression_heat(moved, reference, size, size, var)[0, 0]
    assert heat[16 + 2, 16].abs() < 1e-6  # the heat difference vanishes there
    assert torch.equal(landmark_support(reference, reference, size, size, var, 0.04), torch.zeros(1, 1, size, size))


def test_local_edit_changes_the_picture_only_where_the_edit_moves_the_landmarks(model, frames):
    """``edit_area`` local: where the mouth edit's landmark mask is 0, the still edit is the picture without the
    mouth edit (the yaw offset kept) to the bit; elsewhere the mask mixes it with the whole edit; without an
    expression edit, local is whole. In a video it leaves CAP's state as the whole edit leaves it."""
    results = {}
    for name, controls in {"whole": Controls(yaw=10.0, mouth_open=1.0), "yaw only": Controls(yaw=10.0),
                           "local": Controls(yaw=10.0, mouth_open=1.0, edit_area="local"),
                           "local yaw": Controls(yaw=10.0, edit_area="local")}.items():  # fmt: skip
        animator = _animator(model, controls=controls)
        animator.set_source(frames[:1])
        results[name] = animator.edit()
    assert torch.equal(results["local yaw"], results["yaw only"])
    with torch.no_grad():
        kp = model.detect(frames[:1])
        own = kp.coefficients
        posed = [model.pose_keypoints(kp, ControlState(c).apply(own, own, own)).landmarks
                 for c in (Controls(yaw=10.0, mouth_open=1.0), Controls(yaw=10.0))]  # fmt: skip
    mask = local_edit_mask(model, *posed, 64, 64).expand_as(results["local"])
    assert 0.005 < (mask > 0).float().mean() < 0.5 and mask.max() > 0.1
    assert torch.equal(results["local"][mask == 0], results["yaw only"][mask == 0])
    mixed = results["yaw only"] + mask * (results["whole"] - results["yaw only"])
    torch.testing.assert_close(results["local"], mixed, atol=1e-6, rtol=0)
    assert (results["whole"] - results["yaw only"])[mask == 0].abs().max() > 1e-4  # whole changes it there
    states = []
    for area in ("whole", "local"):
        animator = _animator(model, controls=Controls(mouth_open=0.5, edit_area=area), motion_smooth="one-euro")
        animator.set_source(frames[:1])
        animator.animate(frames[1:4])
        states.append(model.generator.cap.state.clone())
    assert torch.equal(states[0], states[1])


def test_local_still_edit_at_the_source_pose_changes_the_source_itself_only_where_the_edit_acts(model, frames):
    """A still local edit whose unedited R is the source's own (expression edits only): outside the mask the
    result is the source picture to the bit, inside the source plus the edit's change (edited - unedited
    rendering). With a pose offset the unedited picture is the model's rendering (the test above)."""
    pictures = {}
    for name, controls in {"plain": Controls(), "whole": Controls(eyes=-0.6),
                           "local": Controls(eyes=-0.6, edit_area="local")}.items():  # fmt: skip
        animator = _animator(model, controls=controls)
        animator.set_source(frames[:1])
        pictures[name] = animator.edit()
    source = animator.source.image
    with torch.no_grad():
        kp = model.detect(frames[:1])
        own = kp.coefficients
        posed = [model.pose_keypoints(kp, ControlState(c).apply(own, own, own)).landmarks
                 for c in (Controls(eyes=-0.6), Controls())]  # fmt: skip
    mask = local_edit_mask(model, *posed, 64, 64).expand_as(source)
    assert 0.005 < (mask > 0).float().mean() < 0.5
    assert torch.equal(pictures["local"][mask == 0], source[mask == 0])
    expected = (source + mask * (pictures["whole"] - pictures["plain"])).clamp(0, 1)
    torch.testing.assert_close(pictures["local"], expected, atol=1e-6, rtol=0)
    assert (pictures["plain"] - source).abs().max() > 1e-2  # the model's rendering is not the source


@pytest.mark.parametrize(
    ("option", "layers", "inputs"),
    [("expression_code", "expression_up", "in_features"), ("expression_map", "expression_maps", "in_channels")],
)
def test_expression_change_reaches_the_decoder_and_no_change_adds_nothing(frames, option, layers, inputs):
    """pechead.expression_code (the change of the expression coefficients) and pechead.expression_map (the change
    of the landmarks E poses, as heat maps): with the driving's expression equal to the source's the option adds
    nothing (the output is the model's with its weights at zero, exactly), whatever the pose; a mouth change
    reaches the decoder through it (the same change with its weights at zero gives another picture)."""
    torch.manual_seed(0)
    cfg = apply_overrides(train_preset("tiny-pechead"), [f"model.pechead.{option}=true"]).model  # --set
    m = build_model(cfg).eval()
    added = getattr(m.generator, layers)
    width = {"in_features": 6, "in_channels": 16}[inputs]
    assert [getattr(layer, inputs) for layer in added] == [width] * len(added)
    assert len(added) == len(m.generator.up_blocks) + (option == "expression_map")  # + the output layer's input
    source = frames[:1]
    with torch.no_grad():
        kp = m.detect(source)
        prepared = m.prepare_source(source, kp)
        own, opened = kp.coefficients.clone(), kp.coefficients.clone()
        own[:, 0] += 20.0  # a turned head with the source's expression: still no expression change
        opened[:, 3] += 0.8  # mouth_open
        same = m.generate(prepared, m.pose_keypoints(kp, own), None).prediction
        moved = m.generate(prepared, m.pose_keypoints(kp, opened), None).prediction
        saved = [layer.weight.clone() for layer in added]
        for layer in added:
            layer.weight.zero_()
        zeroed = m.generate(prepared, m.pose_keypoints(kp, own), None).prediction
        torch.testing.assert_close(zeroed, same, atol=0, rtol=0)
        without = m.generate(prepared, m.pose_keypoints(kp, opened), None).prediction
        for layer, weight in zip(added, saved, strict=True):
            layer.weight.copy_(weight)
    assert (moved - without).abs().max() > 1e-3


@pytest.mark.parametrize("blend_warp", ["pictures", "flow"])
def test_output_blend_is_a_convex_mix_of_the_two_warps_and_the_decoder(frames, blend_warp):
    """pechead.output_blend: weights forced onto one input give exactly that input: the decoder's picture (the
    model without the blend) or the source warped by the keypoint flow (``deformed`` with ``fusion = kp``)."""
    torch.manual_seed(0)
    overrides = ["model.pechead.output_blend=true", "model.pechead.fusion=kp", f"model.pechead.blend_warp={blend_warp}"]
    cfg = apply_overrides(train_preset("tiny-pechead"), overrides).model
    m = build_model(cfg).eval()
    source, driving = frames[:2], frames[2:4]
    blend = m.generator.blend
    with torch.no_grad():
        blend.weight.zero_()
        blend.bias.copy_(torch.tensor([0.0, 0.0, 60.0]))
        painted = m(source, driving).prediction
        m.generator.blend = None
        plain = m(source, driving).prediction
        m.generator.blend = blend
        blend.bias.copy_(torch.tensor([60.0, 0.0, 0.0]))
        out = m(source, driving)
    torch.testing.assert_close(painted, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.prediction, out.deformed, atol=1e-6, rtol=0)
    assert (out.prediction - plain).abs().max() > 1e-2


def test_blend_of_flows_warps_the_source_once(frames):
    """blend_warp = flow: equal weights on two flows (none on the decoder) warp the source once by their mean. With
    the flows shifted by +d and -d that is the source itself; the mix of two warped pictures is a double image."""
    cfg = apply_overrides(train_preset("tiny-pechead"), ["model.pechead.output_blend=true"]).model
    generator = build_model(cfg).generator
    image = frames[:1]
    identity = make_coordinate_grid(64, 64).unsqueeze(0)
    shift = torch.tensor([0.2, 0.0])
    flows = (identity + shift, identity - shift)
    feature = torch.zeros(1, generator.final.in_channels, 64, 64)
    painted = torch.zeros_like(image)
    with torch.no_grad():
        generator.blend.weight.zero_()
        generator.blend.bias.copy_(torch.tensor([0.0, 0.0, -60.0]))
        generator.blend_warp = "flow"
        once = generator._blend(feature, image, flows, painted)
        generator.blend_warp = "pictures"
        mixed = generator._blend(feature, image, flows, painted)
    torch.testing.assert_close(once, warp(image, identity), atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed, 0.5 * (warp(image, flows[0]) + warp(image, flows[1])), atol=1e-5, rtol=0)
    assert (mixed - once).abs().mean() > 1e-2


def test_residual_decoder_adds_its_picture_to_the_warps(frames):
    """blend_decoder = residual: a decoder picture of 0.5 adds nothing (the output is the warp the blend picks:
    ``deformed`` with ``fusion = kp``); a saturated one clamps to 1; and the decoder's output layer gets a gradient
    whatever the blend's weights, which the mix (decoder weight ~0) starves."""
    torch.manual_seed(0)
    overrides = ["model.pechead.output_blend=true", "model.pechead.fusion=kp", "model.pechead.blend_decoder=residual"]
    m = build_model(apply_overrides(train_preset("tiny-pechead"), overrides).model).eval()
    source, driving = frames[:2], frames[2:4]
    generator = m.generator
    assert generator.blend.out_channels == 2  # the two warps only
    with torch.no_grad():
        generator.blend.weight.zero_()
        generator.blend.bias.copy_(torch.tensor([60.0, 0.0]))
        generator.final.weight.zero_()
        generator.final.bias.zero_()
        out = m(source, driving)
        torch.testing.assert_close(out.prediction, out.deformed, atol=1e-6, rtol=0)
        generator.final.bias.fill_(20.0)
        assert torch.equal(m(source, driving).prediction, torch.ones_like(out.prediction))
        generator.final.bias.zero_()
    m(source, driving).prediction.square().sum().backward()
    assert generator.final.bias.grad.abs().min() > 1e-3


@pytest.mark.parametrize("detach", [False, True])
def test_detached_landmarks_get_no_gradient_from_the_picture(frames, detach):
    """pechead.detach_landmarks: the output's gradient reaches E's canonical landmarks only when they are not
    detached; the learned keypoints get it either way."""
    torch.manual_seed(0)
    overrides = ["model.pechead.expression_map=true", f"model.pechead.detach_landmarks={str(detach).lower()}"]
    m = build_model(apply_overrides(train_preset("tiny-pechead"), overrides).model)
    m(frames[:2], frames[2:4]).prediction.sum().backward()
    conditioned = m.kp_detector.conditioned
    grad = conditioned.canonical.bias.grad.reshape(-1, 3)
    assert grad[: conditioned.num_kp].abs().max() > 0
    assert (grad[conditioned.num_kp :].abs().max() > 0) != detach


def test_expression_region_marks_the_mouth_and_weights_the_loss(model, frames):
    """PECHead.expression_region: zero for an unchanged expression (any pose); for a mouth opening its peak lies
    at the inner lips. expression_region_loss is a weighted mean: a constant error c gives c."""
    source = frames[:1]
    with torch.no_grad():
        kp = model.detect(source)
        turned, opened = kp.coefficients.clone(), kp.coefficients.clone()
        turned[:, 0] += 20.0
        opened[:, 3] += 1.0  # mouth_open
        still = model.expression_region(kp, model.pose_keypoints(kp, turned), 64, 64)
        moved = model.pose_keypoints(kp, opened)
        region = model.expression_region(kp, moved, 64, 64)
    assert still.abs().max() == 0
    peak = make_coordinate_grid(64, 64).reshape(-1, 2)[region.flatten().argmax()]
    inner = [LANDMARK_NAMES.index(n) for n in ("lip_inner_upper", "lip_inner_lower")]
    assert (peak - moved.landmarks[0, inner].mean(0)).norm() < 0.1  # within 3 px of the opening's centre
    out = model(source, frames[1:2])
    target = (out.prediction - 0.25).detach()
    assert float(expression_region_loss(model, out, target).detach()) == pytest.approx(0.25, abs=1e-5)


def test_mean_face_start_poses_the_mean_face(frames):
    """canonical_init = "mean_face": at the start the expression MLP is exactly the landmarks' expression basis
    (D(c, e) = B e for any c), and the canonical points have depth, so that a yaw moves the nose (in front)
    further right than the eye centres (behind it): both false with the flat start."""
    torch.manual_seed(0)
    model = build_model("tiny-pechead").eval()
    conditioned, num_kp = model.kp_detector.conditioned, model.cfg.keypoints.num_kp
    basis = torch.from_numpy(landmark_expression_basis()).float()
    with torch.no_grad():
        e = torch.randn(3, 6)
        canonical = conditioned.canonical_points(frames[:3])
        offset = conditioned.deform(torch.cat([canonical.reshape(3, -1), e], dim=1)).reshape(3, -1, 3)
        torch.testing.assert_close(offset[:, num_kp:], torch.einsum("bj,jlc->blc", e, basis), atol=1e-6, rtol=0)
        assert not offset[:, :num_kp].any()
        kp = model.detect(frames[:1])
        turned = model.pose_keypoints(kp, ControlState(Controls(yaw=20.0)).apply(*(kp.coefficients,) * 3))
    shift = (turned.landmarks - kp.landmarks)[0, :, 0]
    assert shift[4] > shift[:2].max() + 0.01  # nose tip (index 4) vs the eye centres, frame units
    cfg = model_preset("tiny-pechead")
    flat = build_model(replace(cfg, pechead=replace(cfg.pechead, canonical_init="flat")))
    assert not flat.kp_detector.conditioned.canonical.bias.reshape(-1, 3)[:, 2].any()


def test_mmfa_weights_sum_to_one_and_equal_flows_give_the_plain_warp():
    torch.manual_seed(0)
    fusion = FeatureFusion(6, "mmfa")
    a, b = torch.rand(2, 6, 16, 16), torch.rand(2, 6, 16, 16)
    _, weights = fusion(a, b, torch.rand(2, 2, 16, 16))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 16, 16))
    fused, _ = fusion(a, a, torch.zeros(2, 2, 16, 16))
    torch.testing.assert_close(fused, a)
    model = build_model("tiny-pechead")
    feature = torch.rand(2, 8, 32, 32)
    flow = tps_flow(torch.rand(2, 18, 2) * 1.6 - 0.8, torch.rand(2, 18, 2) * 1.6 - 0.8, 32, 32, 1e-3)
    torch.testing.assert_close(model.generator.fuse(0, feature, (flow, flow), None), warp(feature, flow))


def test_landmark_flow_maps_driving_landmarks_to_the_source_landmarks():
    model = build_model("tiny-pechead")
    source, driving = (
        torch.tensor([[[-0.3, -0.2], [0.3, -0.2], [0.0, 0.4]]]),
        torch.tensor([[[-0.2, -0.1], [0.35, -0.25], [0.05, 0.5]]]),
    )
    model.generator.regularization = 0.0
    flow = model.generator.landmark_flow(source, driving, 41, 41)
    sampled = torch.nn.functional.grid_sample(flow.permute(0, 3, 1, 2), driving[:, None], align_corners=True)
    torch.testing.assert_close(sampled[:, :, 0].permute(0, 2, 1), source, atol=1e-4, rtol=0)


def test_cap_with_gate_zero_is_the_per_frame_model(model, frames):
    source, driving = frames[:1], frames[1:]
    with torch.no_grad():
        saved = model.generator.cap.gate_param.clone()
        model.generator.cap.gate_param.zero_()
    try:
        video = _animator(model, controls=Controls(pose="absolute"))
        video.set_source(source)
        per_frame = video.animate_pairs(source.expand(len(driving), -1, -1, -1), driving)
        torch.testing.assert_close(video.animate(driving).prediction, per_frame, atol=1e-5, rtol=0)
    finally:
        with torch.no_grad():
            model.generator.cap.gate_param.copy_(saved)
    assert model.generator.cap.gate.abs() > 0.1


def test_a_frame_on_its_own_is_the_first_frame_of_a_video(model, frames):
    """Independent pairs and still edits (temporal "none") run CAP as a one-frame video (h_0 = f_0), the state a
    video's first frame gets, not with CAP left out: a model trained with CAP is the same model on one frame."""
    source, driving = frames[:1], frames[1:3]
    video = _animator(model, controls=Controls(pose="absolute"))
    video.set_source(source)
    first = video.animate(driving[:1]).prediction
    pairs = video.animate_pairs(source.expand(2, -1, -1, -1), driving)
    torch.testing.assert_close(pairs[:1], first, atol=1e-6, rtol=0)
    with torch.no_grad():
        saved = model.generator.cap.gate_param.clone()
        model.generator.cap.gate_param.zero_()
    try:
        without = video.animate_pairs(source.expand(2, -1, -1, -1), driving)
    finally:
        with torch.no_grad():
            model.generator.cap.gate_param.copy_(saved)
    assert not torch.equal(pairs, without)  # CAP acts on a single frame too (left out, gate 0 changed nothing)


def test_cap_still_video_constant_batching_invariant_and_reset(model, frames):
    source, driving = frames[:1], frames[1:]
    animator = _animator(model)
    animator.set_source(source)
    still = animator.animate(frames[3:4].expand(5, -1, -1, -1)).prediction
    assert torch.equal(still, still[:1].expand_as(still))
    animator.set_source(source)
    whole = animator.animate(driving).prediction
    animator.set_source(source)
    split = torch.cat([animator.animate(driving[:4]).prediction, animator.animate(driving[4:]).prediction])
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)
    animator.set_source(frames[2:3])  # a new source: the state restarts
    fresh = _animator(model)
    fresh.set_source(frames[2:3])
    torch.testing.assert_close(animator.animate(driving).prediction, fresh.animate(driving).prediction)
    assert animator.model.generator.cap.state is not None


def test_temporal_context_step_by_hand():
    torch.manual_seed(0)
    cap = TemporalContext(4)
    x = torch.rand(3, 4, 5, 5)
    out = cap(x)
    state = x[:1]
    for t in range(3):
        expected, state = cap.step(x[t : t + 1], state)
        torch.testing.assert_close(out[t : t + 1], expected)


def test_controls_validation_recipe_and_parsing(tmp_path):
    controls = Controls(pose="fixed", fixed_pose=(10.0, 0.0, -5.0), smile=0.5, regions="mouth")
    assert controls.regions == {"pose": 0.0, "eyes": 0.0, "brows": 0.0, "mouth": 1.0}
    assert Controls.from_json(controls.to_json()) == controls
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"yaw": 10, "smiles": 1}))
    with pytest.raises(OstnetError, match="unknown key\\(s\\) smiles"):
        Controls.load(path)
    for kwargs, message in (
        ({"yaw": 120.0}, "yaw 120.0 is out of range"),
        ({"expression_scale": -1.0}, "expression scale"),
        ({"smile": 2.0}, "smile 2.0 is out of range"),
        ({"regions": {"mouth": 1.5}}, "region weight mouth"),
        ({"regions": {"nose": 1.0}}, "unknown region"),
        ({"pose": "fixed"}, "fixed pose needs its angles"),
        ({"edit_area": "mouth"}, "unknown edit area 'mouth'"),
    ):
        with pytest.raises(OstnetError, match=message):
            Controls(**kwargs)
    assert parse_pose("fixed:10,-5,2") == ("fixed", (10.0, -5.0, 2.0))
    with pytest.raises(OstnetError, match="three angles"):
        parse_pose("fixed:10,5")
    assert parse_regions("mouth=1,eyes=0.5") == {"mouth": 1.0, "eyes": 0.5}


def test_control_semantics_on_coefficients():
    src = torch.zeros(1, 32)
    src[0, 3:9] = torch.tensor([0.1, 1.0, 0.8, 0.8, 0.0, 0.0])
    src[0, 9:12] = torch.tensor([0.0, 0.0, 0.5])
    first = src.clone()
    first[0, :3] = torch.tensor([10.0, 0.0, 0.0])
    later = first.clone()
    later[0, :3] = torch.tensor([25.0, 0.0, 0.0])
    later[0, 3] = 0.9
    state = ControlState(Controls())
    state.apply(src, first, first)
    out = state.apply(src, later, later)
    assert out[0, 0].item() == pytest.approx(15.0, abs=1e-4) and out[0, 3].item() == pytest.approx(0.9)
    for controls, index, value in (
        (Controls(pose="source", expression="source", mouth_open=0.3), 3, 0.4),
        (Controls(pose="absolute"), 0, 25.0),
        (Controls(pose="fixed", fixed_pose=(0.0, 5.0, 0.0), yaw=3.0), 0, 3.0),
        (Controls(expression="neutral"), 5, 1.0),
        (Controls(pose="absolute", expression_scale=0.5), 3, 0.5),
        (Controls(pose="absolute", regions="mouth"), 0, 0.0),
    ):
        s = ControlState(controls)
        assert s.apply(src, later, later)[0, index].item() == pytest.approx(value, abs=1e-4), controls


def test_models_that_cannot_turn_a_head_refuse_controls():
    ostnet = build_model("tiny")
    assert supported_controls(ostnet) == frozenset() and "yaw" in supported_controls(build_model("tiny-pechead"))
    with pytest.raises(OstnetError, match="--yaw: model 'tiny' cannot honour it"):
        Animator(ostnet, device="cpu", controls=Controls(yaw=10.0))
    Animator(ostnet, device="cpu", controls=Controls())  # no controls: fine


def test_checkpoint_round_trip(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "p.safetensors")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, PECHead) and loaded.cfg == model.cfg
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x[:1], x[1:]).prediction, model(x[:1], x[1:]).prediction)
