"""``ostnet demo``: the quick run end to end, the trainer's time budget, bad output folders, Ctrl-C, the verdict."""

from __future__ import annotations

import base64
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ostnet import cli
from ostnet.demo import report as R
from ostnet.demo import run as D
from ostnet.demo.animation import DRIVING_FACTORS, pick_examples, synthetic_sequence
from ostnet.errors import OstnetError
from ostnet.evaluation.report import CheckpointSummary

IMG_OR_VIDEO = re.compile(r"<(img|video|source)\b[^>]*>", re.IGNORECASE)
SRC = re.compile(r'\bsrc="([^"]*)"')


# ------------------------------------------------------------------------------------------------------------
# End to end: `ostnet demo --quick`
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("demo") / "out"
    capture = io.StringIO()
    from contextlib import redirect_stdout

    with warnings.catch_warnings(), redirect_stdout(capture):
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        code = cli.main(["demo", "--quick", "--output", str(out), "--no-progress"])
    return out, code, capture.getvalue()


def test_quick_demo_writes_report_and_files(quick_demo):
    out, code, stdout = quick_demo
    assert code == 0
    for name in ("report.html", "demo.json", "models/Baseline.safetensors", "models/OSTNet.safetensors",
                 "evaluation/results.json", "evaluation/pairs.csv", "animation/comparison.gif",
                 "animation/comparison.mp4", "data/synthetic.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.rglob(".*.part*")), "temporary files left behind"
    assert f"Report: {out / 'report.html'}" in stdout
    assert "Baseline" in stdout and "OSTNet" in stdout and "SSIM" in stdout


def test_quick_demo_table_has_both_rows_and_the_honest_verdict(quick_demo):
    out, _, _ = quick_demo
    html = (out / "report.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr><td class="name">(Baseline|OSTNet|<i>reference[^<]*</i>)</td>', html)
    assert rows[:3] == ["Baseline", "OSTNet", "<i>reference: the source copied (no motion)</i>"]
    summary = json.loads((out / "demo.json").read_text())
    ssim = {label: values["ssim"] for label, values in summary["different_scale"].items()}
    assert set(ssim) == {"Baseline", "OSTNet"}
    assert summary["models"][0]["steps"] == summary["models"][1]["steps"] >= 1  # equal steps
    pairs = summary["different_scale"]["OSTNet"]["pairs"]
    assert summary["st_rectification_ssim"]["count"] == summary["no_motion_reference"]["count"] == pairs
    assert 0 < summary["no_motion_reference"]["ssim"] <= 1
    lost = ssim["OSTNet"] <= ssim["Baseline"]
    assert ("did NOT beat" in html) == lost
    assert ("did NOT beat" in summary["verdict"]) == lost


def test_demo_data_pans_and_is_textured_as_the_plan_says(quick_demo):
    out, _, _ = quick_demo
    clips = D.FULL_PLAN.clips
    assert D.QUICK_PLAN.clips == clips == D.CLIPS and clips.camera > 0 and clips.texture > 0
    spec = json.loads((out / "data" / "synthetic.json").read_text())["spec"]
    assert (spec["motion"], spec["camera"], spec["texture"]) == (clips.motion, clips.camera, clips.texture)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"ostnet synth --camera {clips.camera:g} --texture {clips.texture:g}" in html
    assert "<code>model.keypoints.num_kp=5</code>" in html  # the demo's overrides are listed


def test_quick_demo_embeds_every_picture(quick_demo):
    out, _, _ = quick_demo
    html = (out / "report.html").read_text(encoding="utf-8")
    tags = IMG_OR_VIDEO.findall(html)
    elements = IMG_OR_VIDEO.finditer(html)
    assert len(tags) >= 10  # examples, strips, GIF, loss plot
    kinds = set()
    for element in elements:
        src = SRC.search(element.group(0))
        assert src is not None, element.group(0)[:80]
        match = re.fullmatch(r"data:image/(png|gif);base64,([A-Za-z0-9+/=]+)", src.group(1))
        assert match is not None, src.group(1)[:60]
        image = Image.open(io.BytesIO(base64.b64decode(match.group(2))))
        image.load()
        assert image.format.lower() == match.group(1)
        kinds.add(match.group(1))
    assert kinds == {"png", "gif"}
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "external URL in the report"


# ------------------------------------------------------------------------------------------------------------
# The trainer's wall-clock budget (TrainConfig.max_seconds)
# ------------------------------------------------------------------------------------------------------------


class _FakeClock:
    """``time.monotonic`` that advances one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


def test_trainer_stops_when_max_seconds_have_passed(tmp_path, monkeypatch):
    from ostnet.data.synthetic import write_synthetic_dataset
    from ostnet.training import trainer as T

    root = write_synthetic_dataset(tmp_path / "data", num_identities=3, videos_per_identity=1, num_frames=4,
                                   test_identities=1, seed=1)  # fmt: skip
    cfg = D.train_config(root, baseline=True, batch_size=2, log_every=1, seed=0, budget_s=2.5)
    assert cfg.max_seconds == 2.5 and not cfg.model.scale_transform.enabled and not cfg.model.generator.scale_embedding
    monkeypatch.setattr(T, "time", _FakeClock())  # fit() reads t=1 (deadline 3.5); checks read t=2, 3, 4, ...
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM VGG-19.*")
        trainer = T.Trainer(cfg, tmp_path / "run", device="cpu", show_progress=False)
        final = trainer.fit()
    assert trainer.progress.step == 2  # checked before step 1 (t=2), after step 1 (t=3), after step 2 (t=4)
    assert final.is_file()


def test_ostnet_config_differs_from_baseline_only_in_st_and_se(tmp_path):
    from ostnet import config as C

    base = C.to_dict(D.train_config(tmp_path, baseline=True, batch_size=8, log_every=5, seed=3, budget_s=10))
    ost = C.to_dict(D.train_config(tmp_path, baseline=False, batch_size=8, log_every=5, seed=3, budget_s=10))
    assert ost["model"]["scale_transform"]["enabled"] and ost["model"]["generator"]["scale_embedding"]
    for cfg in (base, ost):
        cfg["model"]["scale_transform"]["enabled"] = cfg["model"]["generator"]["scale_embedding"] = None
        cfg["model"]["name"] = None
    assert base == ost
    assert ost["loss"]["vgg_weights"] == "random" and ost["max_seconds"] == 10


def test_demo_set_overrides_the_demos_settings_for_both_models(tmp_path):
    """``ostnet demo --set``: applied to OSTNet and the Baseline after the demo's own overrides, so it wins."""
    from ostnet.demo import training as T

    extra = ("loss.pixel_weight=0", "loss.perceptual_layer_weights=[1, 1, 1, 1, 1]")
    for baseline in (True, False):
        cfg = D.train_config(tmp_path, baseline=baseline, batch_size=8, log_every=5, seed=3, budget_s=10, extra=extra)
        assert cfg.loss.pixel_weight == 0 and tuple(cfg.loss.perceptual_layer_weights) == (1, 1, 1, 1, 1)
    default = D.train_config(tmp_path, baseline=False, batch_size=8, log_every=5, seed=3, budget_s=10)
    assert default.loss.pixel_weight == T.PIXEL_WEIGHT > 0
    assert T.demo_overrides(None, extra)[-2:] == extra  # listed in the report after the demo's own


def test_bad_demo_set_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["demo", "--quick", "--set", "loss.no_such_option=1", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--set" in err and "no_such_option" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# ------------------------------------------------------------------------------------------------------------
# Bad input and interruption
# ------------------------------------------------------------------------------------------------------------


def test_non_empty_output_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert cli.main(["demo", "--quick", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_output_under_a_file_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["demo", "--quick", "--output", str(blocker / "out")]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err


def test_overwrite_replaces_only_the_demos_entries(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "report.html").write_text("old")
    (out / "notes.txt").write_text("mine")
    assert D.prepare_output(out, overwrite=True, disk_mb=1) is False
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_too_little_disk_space_is_refused(tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(D.shutil, "disk_usage", lambda path: real._replace(free=10 * 2**20))
    with pytest.raises(OstnetError, match="needs about 300 MB, 10 MB free"):
        D.prepare_output(tmp_path / "new", overwrite=False, disk_mb=300)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("existed", [False, True])
def test_ctrl_c_leaves_no_report_and_no_partial_output(tmp_path, monkeypatch, capsys, existed):
    out = tmp_path / "out"
    if existed:
        out.mkdir()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "train_models", interrupted)  # after the dataset was written
    assert cli.main(["demo", "--quick", "--output", str(out), "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (list(out.iterdir()) == []) if existed else not out.exists()


def test_bad_budget_is_refused(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--budget", "0", "--output", str(tmp_path / "o")]) == 2
    assert "--budget" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------
# Verdict, paired difference, example choice
# ------------------------------------------------------------------------------------------------------------


def test_paired_difference_analytic_case():
    diff = R.paired_difference({0: 0.5, 1: 0.6, 7: 0.1}, {0: 0.6, 1: 0.8, 2: 0.9})
    assert diff.count == 2 and diff.wins == 2
    assert diff.mean == pytest.approx(0.15)
    assert diff.half_width == pytest.approx(1.96 * np.std([0.1, 0.2], ddof=1) / np.sqrt(2))
    assert R.paired_difference({0: 0.5}, {1: 0.5}) is None


@pytest.mark.parametrize(
    ("baseline", "ostnet", "diff", "level"),
    [
        (0.80, 0.70, R.PairedDifference(-0.1, 0.01, 50, 3), "bad"),
        (0.70, 0.70, R.PairedDifference(0.0, 0.01, 50, 25), "bad"),
        (0.70, 0.71, R.PairedDifference(0.01, 0.02, 50, 27), "unclear"),
        (0.70, 0.75, R.PairedDifference(0.05, 0.01, 50, 45), "good"),
        (None, 0.75, None, "bad"),
    ],
)
def test_verdict_never_hides_a_loss(baseline, ostnet, diff, level):
    verdict = R.decide(baseline, ostnet, diff, copy_ssim=0.99 if level == "bad" else None)
    assert verdict.level == level
    assert ("did NOT beat" in verdict.text) == (baseline is not None and ostnet <= baseline)


def _fake_report(ssim_baseline: float, ssim_ostnet: float, copy_ssim: float = 0.6) -> R.ReportData:
    tile = np.zeros((64, 64, 3), np.uint8)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    models = [R.TrainedModel(label, label, Path(f"{label}.safetensors"), Path("nowhere"), 5, 1.0)
              for label in ("Baseline", "OSTNet")]  # fmt: skip
    summaries = [CheckpointSummary(m.label, str(m.weights), 4, 4, 0, 0, {"ssim": s}) for m, s in
                 zip(models, (ssim_baseline, ssim_ostnet), strict=True)]  # fmt: skip
    outputs = tuple(R.ModelImage(m.label, tile, 0.5) for m in models)
    example = R.ExamplePair(0, 0.8, 1.2, tile, tile, tile, tile, outputs)
    rows = tuple(R.AnimatedRow(m.label, "absolute", frames, 0.5, 0.1) for m in models)
    animation = R.AnimationResult(tile, frames, frames, rows, R.png_bytes(tile), (Path("a/c.gif"),), (1.0, 0.7), (0, 2))
    return R.ReportData("ostnet demo", False, "cpu", 10.0, D.asdict(D.FULL_PLAN), models, summaries, None,
                        R.png_bytes(tile), [example], animation, overrides=("optim.lr=0.001",),
                        reference=R.Reference(copy_ssim, 20.0, 0.1, 4))  # fmt: skip


def test_report_says_plainly_when_ostnet_loses():
    html = R.render_report(_fake_report(0.80, 0.70))
    assert '<div class="verdict bad">OSTNet did NOT beat the Baseline' in html
    assert "reference: the source copied (no motion)" in html
    assert "verdict bad" not in R.render_report(_fake_report(0.70, 0.80))


def test_report_states_the_features_and_the_source_copy_lpips():
    data = _fake_report(0.70, 0.80)
    data.reference = R.Reference(0.6, 20.0, 0.1, 4, lpips=0.4321)
    data.features = "ImageNet VGG-16"
    html = R.render_report(data)
    assert "<td>0.432</td>" in html and "uses ImageNet VGG-16 features" in html and "Pretrained" in html
    assert "uses RANDOM VGG-19 features</b>. <b>Not pretrained" in R.render_report(_fake_report(0.70, 0.80))
    assert "no pixel L1 term, as in the paper" in html
    data.pixel_weight = 5.0
    assert "a pixel L1 term that the paper does not have (<code>loss.pixel_weight=5</code>" in R.render_report(data)


def test_report_cautions_when_both_models_are_worse_than_copying_the_source():
    html = R.render_report(_fake_report(0.70, 0.80, copy_ssim=0.95))
    assert '<div class="verdict unclear">OSTNet beats the Baseline' in html
    assert "worse than simply copying the source image (SSIM 0.9500" in html
    assert "Caution" not in R.render_report(_fake_report(0.70, 0.80, copy_ssim=0.75))


def test_examples_are_the_most_shrunk_and_most_enlarged_pairs():
    from ostnet.evaluation.protocols import Pair

    factors = [(1.0, 1.0), (0.7, 0.72), (1.3, 1.25), (0.9, 1.1), (1.2, 1.29), (0.75, 0.7)]
    pairs = [Pair(i, "s", "d", a, b) for i, (a, b) in enumerate(factors)]
    assert [p.pair_id for p in pick_examples(pairs, 4)] == [1, 2, 4, 5]
    assert [p.pair_id for p in pick_examples(pairs, 1)] == [2]


def test_an_evaluation_that_failed_for_every_pair_stops_the_demo(tmp_path, monkeypatch):
    import ostnet.evaluation.evaluate as E

    empty = [
        CheckpointSummary("OSTNet", "o.safetensors", 10, 0, 10, 0),
        CheckpointSummary("Baseline", "b", 10, 10, 0, 0),
    ]
    monkeypatch.setattr(E, "run_evaluation", lambda cfg: empty)
    cfg = D.DemoConfig(output=str(tmp_path / "demo"), quick=True)
    with pytest.raises(OstnetError, match="failed for every pair"):
        D.evaluate_models(cfg, tmp_path, [], "cpu")


def test_animation_driving_is_the_truth_made_narrower_by_the_augmentation():
    import torch

    from ostnet.augment import augmentation_affine

    driving, truth = synthetic_sequence(3, 0, D.CLIPS)
    assert driving.shape == truth.shape == (3, 64, 64, 3)
    alpha, beta = DRIVING_FACTORS
    affine = augmentation_affine(alpha, beta, 64, 64)
    expected = torch.tensor([beta / max(alpha, beta), alpha / max(alpha, beta)])  # (x, y): narrower, as tall
    assert torch.allclose(affine.scale, expected, atol=0.01)
    # columns outside the squeezed image are the augmentation's zero padding; rows are untouched
    left = round((1 - beta) * 64 / 2) - 1
    assert driving[:, :, :left].max() == 0 and truth[:, :, :left].max() > 0
    assert driving[:, :, 32].std() > 10  # the picture is still there in the middle


def test_demo_features_follow_the_installed_weights(real_weights, monkeypatch, tmp_path):
    """auto/imagenet use the installed ImageNet VGG-16 (no VGG-19 installed); random is random on purpose;
    imagenet without any installed weights is a one-line error naming the install command."""
    from ostnet.demo import training as T

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for choice in ("auto", "imagenet"):
        features = T.choose_features(choice)
        assert features.imagenet and features.override == "loss.perceptual_network=vgg16"
        assert features.override in T.demo_overrides(features)
    assert T.choose_features("random").override == 'loss.vgg_weights="random"'
    monkeypatch.setenv("OSTNET_HOME", str(tmp_path / "empty"))
    assert not T.choose_features("auto").imagenet
    with pytest.raises(OstnetError, match="ostnet weights install"):
        T.choose_features("imagenet")
