"""The evaluation harness and ``ostnet evaluate``: outputs, oracle scores, resume, determinism, bad input."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ostnet.cli import main
from ostnet.errors import OstnetError
from ostnet.evaluation import evaluate as E
from ostnet.evaluation.face_metrics import FaceConfig
from ostnet.evaluation.protocols import SamplingOptions
from ostnet.inference.animator import Animator


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from ostnet.checkpoint import save_checkpoint
    from ostnet.config import model_preset
    from ostnet.data.synthetic import write_synthetic_dataset
    from ostnet.models.ostnet import build_model

    root = tmp_path_factory.mktemp("eval")
    data = write_synthetic_dataset(root / "data", num_identities=4, videos_per_identity=1, num_frames=6, size=64,
                                   test_identities=3)  # fmt: skip
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        checkpoints.append(str(save_checkpoint(build_model(model_preset("tiny")), root / f"tiny{seed}.safetensors")))
    return data, checkpoints


def _cfg(assets, out: Path, protocol: str = "same-scale", num_pairs: int = 4, **kw) -> E.EvalConfig:
    data, checkpoints = assets
    base = E.EvalConfig(data=str(data), protocol=protocol, output=str(out), checkpoints=(checkpoints[0],),
                        sampling=SamplingOptions(num_pairs=num_pairs), batch_size=4, face_metrics=False,
                        progress=False, num_samples=3, lpips_hub_dir=str(out / "no-hub"))  # fmt: skip
    return replace(base, **kw)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: int(r["pair_id"]))


@pytest.fixture
def blend(monkeypatch):
    """A cheap deterministic stand-in for the model: the mean of source and driving (non-trivial scores)."""
    calls = []

    def animate_pairs(self, source, driving):
        calls.append(driving.shape[0])
        return 0.5 * (source + driving)

    monkeypatch.setattr(Animator, "animate_pairs", animate_pairs)
    return calls


@pytest.fixture
def oracle(monkeypatch):
    """An animator that returns the driving frame it was given: the ideal reenactment of same-scale pairs."""
    calls = []

    def animate_pairs(self, source, driving):
        calls.append(driving.shape[0])
        return driving.clone()

    monkeypatch.setattr(Animator, "animate_pairs", animate_pairs)
    return calls


def test_oracle_scores_are_perfect_on_same_scale(assets, tmp_path, oracle):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", num_pairs=3, face_metrics=True))
    assert s.means["l1"] == 0 and s.means["ssim"] == pytest.approx(1.0) and s.means["psnr"] == float("inf")
    assert s.face_missing == 0 and s.counts["akd"] == 3
    assert s.means["akd"] == 0 and s.means["aed"] == 0 and s.means["scale_error"] == 0


def test_different_scale_oracle_is_penalised(assets, tmp_path, oracle):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", "different-scale", num_pairs=2, face_metrics=True))
    assert s.pairs_total == 4 and sum(oracle) == 4  # 2 augmentations per same-scale pair
    with open(tmp_path / "out" / "pairs.csv", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert all(0.7 <= float(r["alpha"]) <= 1.3 and 0.7 <= float(r["beta"]) <= 1.3 for r in listed)
    assert s.means["ssim"] < 0.99 and s.means["l1"] > 0.005  # the augmented driving frame is not the GT
    assert s.counts["scale_error"] > 0 and s.means["scale_error"] > 0.01


def test_cross_identity_reports_identity_and_pose(assets, tmp_path, oracle):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", "cross-identity", num_pairs=3, face_metrics=True))
    assert set(s.means) == {"csim", "identity_distance", "pose_distance", "scale_error"}
    assert s.means["pose_distance"] == 0  # the oracle copies the driving frame exactly
    assert s.means["identity_distance"] > 0 and s.means["csim"] < 1
    header = (tmp_path / "out" / "results.md").read_text().splitlines()[2]
    assert "CSIM ↑" in header and "ground truth" not in header and "SSIM" not in header


def test_reconstruction_protocol(assets, tmp_path, oracle):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", "reconstruction", metric_size=64, batch_size=18))
    assert s.pairs_total == 3 * 6 and s.means["l1"] == 0
    with open(tmp_path / "out" / "pairs.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    assert first["source"] == first["driving"] and first["source"].endswith("0000000.png")


def test_resume_after_interrupt_matches_uninterrupted_run(assets, tmp_path, monkeypatch, blend):
    reference = E.run_evaluation(_cfg(assets, tmp_path / "a", num_pairs=10, metric_size=64))[0]
    original, calls = E.PairScorer.score, {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 6:  # during the second batch of 4
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(E.PairScorer, "score", flaky)
    with pytest.raises(KeyboardInterrupt):
        E.run_evaluation(_cfg(assets, tmp_path / "b", num_pairs=10, metric_size=64))
    journal = tmp_path / "b" / "tiny0" / "per_pair.csv"
    assert len(_rows(journal)) == 4 and not (tmp_path / "b" / "results.md").exists()
    monkeypatch.setattr(E.PairScorer, "score", original)
    blend.clear()
    resumed = E.run_evaluation(_cfg(assets, tmp_path / "b", num_pairs=10, metric_size=64))[0]
    assert sum(blend) == 6  # only the unfinished pairs are generated again
    assert (tmp_path / "a" / "pairs.csv").read_bytes() == (tmp_path / "b" / "pairs.csv").read_bytes()
    for a, b in zip(_rows(tmp_path / "a" / "tiny0" / "per_pair.csv"), _rows(journal), strict=True):
        assert a["pair_id"] == b["pair_id"] and float(a["ssim"]) == pytest.approx(float(b["ssim"]), abs=1e-6)
    assert resumed.means["l1"] == pytest.approx(reference.means["l1"], abs=1e-7)


def test_same_seed_same_pairs_and_numbers_other_seed_differs(assets, tmp_path, blend):
    runs = [E.run_evaluation(_cfg(assets, tmp_path / d, sampling=SamplingOptions(num_pairs=4, seed=s),
                                  metric_size=64))[0]
            for d, s in (("a", 7), ("b", 7), ("c", 8))]  # fmt: skip
    assert (tmp_path / "a" / "pairs.csv").read_text() == (tmp_path / "b" / "pairs.csv").read_text()
    assert (tmp_path / "a" / "pairs.csv").read_text() != (tmp_path / "c" / "pairs.csv").read_text()
    assert runs[0].means == runs[1].means


def test_torn_journal_line_is_dropped_and_recomputed(assets, tmp_path, blend):
    cfg = _cfg(assets, tmp_path / "out", num_pairs=4, metric_size=64)
    E.run_evaluation(cfg)
    journal = tmp_path / "out" / "tiny0" / "per_pair.csv"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:12])  # crash in the middle of the last row
    (s,) = E.run_evaluation(cfg)
    assert s.pairs_evaluated == 4 and [int(r["pair_id"]) for r in _rows(journal)] == [0, 1, 2, 3]


def test_failed_pair_is_recorded_with_a_reason(assets, tmp_path, blend):
    data, checkpoints = assets
    frames = sorted((Path(data) / "test").glob("*/*.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    listing = tmp_path / "pairs.csv"
    listing.write_text(f"source,driving,frame\n{frames[0]},{frames[1]},\n{frames[0]},{broken},\n")
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", pairs_csv=str(listing), metric_size=64, allow_outside=True))
    assert s.pairs_evaluated == 1 and s.pairs_failed == 1
    failed = _rows(tmp_path / "out" / "tiny0" / "per_pair.csv")[1]
    assert failed["status"] == "failed" and "not an image" in failed["reason"] and failed["ssim"] == ""


def test_cli_with_two_checkpoints_writes_every_output(assets, tmp_path, capsys):
    """The real tiny model through ``ostnet evaluate``: tables, journal, samples; one comparison table."""
    data, checkpoints = assets
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(data), "--protocol", "same-scale", "--output", str(out), "--num-pairs", "4",
            "--no-face-metrics", "--no-progress", "--samples", "3", "--batch-size", "4"]  # fmt: skip
    assert main([*args, "--checkpoint", checkpoints[0], "--checkpoint", checkpoints[1]]) == 0
    printed = capsys.readouterr().out
    assert "| tiny0 |" in printed and "| tiny1 |" in printed and "data_range=1" in printed
    assert "n/a (AlexNet weights not found; run `ostnet weights install`)" in printed or "LPIPS" not in printed
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["checkpoint"] for r in table] == ["tiny0", "tiny1"] and table[0]["l1"] != table[1]["l1"]
    assert all(0 < float(r["ssim"]) < 1 and r["pairs_evaluated"] == "4" for r in table)
    result = json.loads((out / "results.json").read_text())
    assert result["pairs_listed"] == 4 and result["checkpoints"][1]["pairs_failed"] == 0
    rows = _rows(out / "tiny1" / "per_pair.csv")
    assert [int(r["pair_id"]) for r in rows] == list(range(4)) and {r["status"] for r in rows} == {"ok"}
    assert len(list((out / "tiny0" / "samples").glob("*.png"))) == 3
    from ostnet.io.image import load_image

    assert load_image(out / "samples.png").shape == (18 + 3 * 128, 5 * 128, 3)  # source, driving, 2 models, GT


def test_lpips_column_with_weights(assets, tmp_path, fake_lpips_weights, blend):
    fake_lpips_weights(tmp_path / "hub" / "checkpoints")
    (s,) = E.run_evaluation(
        _cfg(assets, tmp_path / "out", num_pairs=2, lpips_hub_dir=str(tmp_path / "hub"), metric_size=128)
    )
    assert s.means["lpips"] is not None and s.means["lpips"] > 0 and "lpips" not in s.notes


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--protocol", "bogus"], "unknown protocol 'bogus'"),
        (["--protocol", "same-scale", "--data", "{tmp}/empty"], "no videos found"),
        (["--protocol", "same-scale", "--pairs", "{tmp}/missing.csv"], "missing.csv: pair list not found"),
        (["--protocol", "same-scale", "--pairs", "{tmp}/bad.csv"], "pair 0: .*nowhere.png: frame not found"),
        (["--protocol", "same-scale", "--lpips-alexnet", "{tmp}/alex.pth"], "alex.pth: LPIPS weight file not found"),
        (["--protocol", "same-scale", "--checkpoint", "{tmp}/none.safetensors"], "none.safetensors: checkpoint not"),
        (["--protocol", "same-scale", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(assets, tmp_path, capsys, extra, message):
    data, checkpoints = assets
    (tmp_path / "empty" / "test").mkdir(parents=True)
    (tmp_path / "bad.csv").write_text(f"source,driving,frame\n{tmp_path}/nowhere.png,{tmp_path}/nowhere.png,\n")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    args = ["evaluate", "--data", str(data), "--output", str(tmp_path / "out"), "--no-face-metrics", "--no-progress"]
    if "--checkpoint" not in extra:
        args += ["--checkpoint", checkpoints[0]]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ostnet evaluate: error:")
    import re

    assert re.search(message, err), err


def test_missing_landmark_model_fails_before_any_work(assets, tmp_path):
    cfg = _cfg(assets, tmp_path / "out", face_metrics=True, face=FaceConfig(model_dir=str(tmp_path)))
    with pytest.raises(OstnetError, match="shape_predictor_68_face_landmarks.dat: dlib 68-point landmark model"):
        E.run_evaluation(cfg)
    assert not (tmp_path / "out").exists()


def test_resuming_with_other_settings_or_checkpoint_is_refused(assets, tmp_path, blend):
    E.run_evaluation(_cfg(assets, tmp_path / "out", num_pairs=2, metric_size=64))
    with pytest.raises(OstnetError, match="other settings \\(protocol"):
        E.run_evaluation(_cfg(assets, tmp_path / "out", "reconstruction"))
    other = tmp_path / "tiny0.safetensors"
    other.write_bytes(Path(assets[1][1]).read_bytes())  # same label, different weights
    with pytest.raises(OstnetError, match="different checkpoint file"):
        E.run_evaluation(_cfg(assets, tmp_path / "out", num_pairs=2, checkpoints=(str(other),)))


def test_sample_ids_spread_over_the_list():
    assert E.sample_ids(100, 5) == [0, 25, 50, 74, 99]
    assert E.sample_ids(3, 8) == [0, 1, 2] and E.sample_ids(0, 8) == []
    assert np.all(np.diff(E.sample_ids(2083, 8)) > 0)


def test_user_pair_list_for_different_scale(assets, tmp_path, blend):
    data, _ = assets
    frames = sorted((Path(data) / "test").glob("*/*.png"))
    plain = tmp_path / "plain.csv"
    plain.write_text(f"source,driving,frame\n{frames[0]},{frames[1]},\n{frames[2]},{frames[3]},\n")
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "a", "different-scale", pairs_csv=str(plain), metric_size=64))
    assert s.pairs_total == 4  # two seeded augmentations of each listed pair
    with open(tmp_path / "a" / "pairs.csv", newline="") as handle:
        saved = list(csv.DictReader(handle))
    assert [r["driving"] for r in saved] == [str(frames[1])] * 2 + [str(frames[3])] * 2 and saved[0]["alpha"]
    with pytest.raises(OstnetError, match="use --protocol different-scale"):
        E.run_evaluation(_cfg(assets, tmp_path / "b", pairs_csv=str(tmp_path / "a" / "pairs.csv")))


def test_max_pairs_then_the_rest(assets, tmp_path, blend):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", num_pairs=5, max_pairs=2, metric_size=64))
    assert s.pairs_total == 2 and s.pairs_evaluated == 2 and sum(blend) == 2
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", num_pairs=5, metric_size=64))
    assert s.pairs_evaluated == 5 and sum(blend) == 5


def test_cli_interrupt_says_how_to_resume(assets, tmp_path, capsys, monkeypatch):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "run_evaluation", interrupted)
    data, checkpoints = assets
    args = ["evaluate", "--data", str(data), "--protocol", "same-scale", "--output", str(tmp_path / "out")]
    assert main([*args, "--checkpoint", checkpoints[0]]) == 130
    assert "rerun to resume" in capsys.readouterr().err


def test_jitter_metric_is_zero_for_the_oracle_and_the_real_change_for_a_still_result(assets, tmp_path, oracle):
    (s,) = E.run_evaluation(_cfg(assets, tmp_path / "out", "reconstruction", metric_size=64, batch_size=4))
    assert s.counts["jitter"] == 3 * 5 and s.means["jitter"] == 0  # the first frame of a video has no predecessor
    gt, prev = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    assert E.frame_jitter(gt, gt, (gt, prev)) == pytest.approx((gt - prev).abs().mean().item())  # still result


def test_motion_smoothing_in_evaluation_animates_videos_in_order(assets, tmp_path):
    results = {}
    for smooth in ("none", "kalman"):
        kw = dict(metric_size=64, batch_size=4, motion_smooth=smooth)
        (results[smooth],) = E.run_evaluation(_cfg(assets, tmp_path / smooth, "reconstruction", **kw))
    assert results["kalman"].counts["jitter"] == 15
    assert results["kalman"].means["jitter"] != results["none"].means["jitter"]
    with pytest.raises(OstnetError, match="--motion-smooth needs --protocol reconstruction"):
        _cfg(assets, tmp_path / "x", "same-scale", motion_smooth="ema")
