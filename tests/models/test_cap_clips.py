"""CAP over training clips: each clip of a batch runs in order from a fresh state, exactly as a video does at
inference, and no state leaks from one clip to the next."""

from __future__ import annotations

import pytest
import torch

from ostnet.models.ostnet import build_model
from ostnet.models.pechead import TemporalContext

pytestmark = pytest.mark.usefixtures("one_thread")


def test_run_over_clips_equals_each_clip_as_a_video():
    torch.manual_seed(0)
    cap = TemporalContext(4)
    clips = torch.rand(3, 5, 4, 6, 6)
    out, state = cap.run(clips)
    assert out.shape == clips.shape and cap.state is None  # training keeps no state
    for b in range(3):
        cap.reset()
        torch.testing.assert_close(out[b], cap(clips[b]), atol=1e-6, rtol=0)
        torch.testing.assert_close(state[b : b + 1], cap.state, atol=1e-6, rtol=0)


def test_model_clips_are_independent_and_gate_zero_gives_the_per_frame_model():
    """Clips of a batch are independent; a frame on its own is a one-frame clip (a clip's first frame); with the
    gate at 0 every clip frame is the frame on its own."""
    torch.manual_seed(0)
    model = build_model("tiny-pechead").eval()
    gen = torch.Generator().manual_seed(1)
    source = torch.rand(2, 3, 64, 64, generator=gen)
    driving = torch.rand(2, 3, 3, 64, 64, generator=gen)  # 2 clips of 3 frames
    flat_source = source.repeat_interleave(3, dim=0)
    with torch.no_grad():
        both = model(flat_source, driving.flatten(0, 1), clip_length=3).prediction
        first = model(flat_source[:3], driving[0], clip_length=3).prediction
        second = model(flat_source[3:], driving[1], clip_length=3).prediction
        torch.testing.assert_close(both, torch.cat([first, second]), atol=1e-6, rtol=0)
        alone = model(flat_source, driving.flatten(0, 1)).prediction
        torch.testing.assert_close(alone[[0, 3]], both[[0, 3]], atol=1e-6, rtol=0)
        model.generator.cap.gate_param.zero_()
        gated = model(flat_source, driving.flatten(0, 1), clip_length=3).prediction
        gated_alone = model(flat_source, driving.flatten(0, 1)).prediction
    torch.testing.assert_close(gated, gated_alone, atol=1e-6, rtol=0)
    assert (both - gated).abs().max() > 2e-5  # CAP (gate 0.5) changes the frames by more than rounding
    with pytest.raises(ValueError, match="not made of clips of 4"):
        model(flat_source, driving.flatten(0, 1), clip_length=4)
