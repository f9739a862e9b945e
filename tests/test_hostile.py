"""The hostile sweep of issue 16: one parametrised test per class of attack or accident.

Every failing case asserts: exit status 2 (143 for SIGTERM), exactly one line on stderr, no traceback, and
that the whole working folder is byte-identical afterwards (inputs untouched, no output, no temporary file
left). Cases that must succeed (an empty ``--frames`` folder, NaN weights, skipped frames) assert what the
user sees. ``scripts/hostile.sh`` runs this module, the slow cases included; docs/reliability.md holds its table.

Disk-full cases mount a small tmpfs (root, as in CI); the permission cases run the command as ``nobody``
(``setpriv``). Where that is impossible the test skips and says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from tests.conftest import signal_while_writing, unavailable

from ostnet import config as C
from ostnet.checkpoint import save_checkpoint
from ostnet.cli import main
from ostnet.data.synthetic import write_synthetic_dataset
from ostnet.evaluation.report import checkpoint_labels
from ostnet.io.video import VideoWriter
from ostnet.models.ostnet import build_model
from ostnet.training.state import STATE_FORMAT, RunFolder

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------------
# The world: small real inputs in one folder that every failing case must leave byte-identical
# --------------------------------------------------------------------------------------------------------


def _clip(path: Path, frames: int, size: int = 64) -> Path:
    rng = np.random.default_rng(frames)
    with VideoWriter(path, 25, crf=30, preset="ultrafast") as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming ``width`` x ``height`` with almost no data (the 69-byte bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("world")
    shutil.copy(tiny_checkpoint, root / "tiny.safetensors")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "face.png")
    _clip(root / "clip.mp4", 6)
    (root / "fomm.pth.tar").write_bytes(b"a FOMM checkpoint stand-in")
    write_synthetic_dataset(root / "data", num_identities=2, videos_per_identity=1, num_frames=4, test_identities=1)
    (root / "mine").mkdir()
    (root / "mine" / "config.json").write_text('{"my": "own config"}\n')
    (root / "mine" / ".draft.tmp").write_text("my unsaved draft\n")
    (root / "evalout").mkdir()
    (root / "evalout" / "pairs.csv").write_text("source,driving,frame\n")
    (root / "empty").mkdir()
    (root / "binary.csv").write_bytes(bytes(range(256)) * 4)
    os.link(root / "clip.mp4", root / "hardlink.mp4")
    (root / "symlink.mp4").symlink_to(root / "clip.mp4")
    _png_claiming(root / "bomb.png", 60000, 60000)
    _odd_checkpoints(root, tiny_checkpoint)
    _run_folders(root)
    return root


def _odd_checkpoints(root: Path, tiny: Path) -> None:
    """Checkpoints whose config does not describe their tensors, and one with NaN weights."""
    with safe_open(str(tiny), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["model_config"])
    huge = json.loads(meta["model_config"])
    huge["generator"]["block_expansion"] = 2**20
    huge["generator"]["max_features"] = 2**20
    save_file(tensors, str(root / "huge.safetensors"), metadata={**meta, "model_config": json.dumps(huge)})
    wide = json.loads(meta["model_config"])  # within the config's bounds, but not the stored tensors' widths
    wide["generator"]["block_expansion"] = wide["generator"]["max_features"] = 4096
    save_file(tensors, str(root / "wide.safetensors"), metadata={**meta, "model_config": json.dumps(wide)})
    other = dict(cfg, keypoints=dict(cfg["keypoints"], num_kp=cfg["keypoints"]["num_kp"] + 1))
    save_file(tensors, str(root / "mismatch.safetensors"), metadata={**meta, "model_config": json.dumps(other)})
    fewer = dict(list(tensors.items())[1:])
    save_file(fewer, str(root / "missing.safetensors"), metadata=meta)
    model = build_model("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    save_checkpoint(model, root / "nan.safetensors")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _run_folders(root: Path) -> None:
    """Run folders whose training state is incomplete or a malicious pickle."""
    cfg = C.apply_overrides(
        C.train_preset("tiny"), [f"data.root={json.dumps(str(root / 'data'))}", "loss.allow_random_vgg=true"]
    )
    model = build_model(cfg.model)
    for name, state in (("run-partial", {"format": STATE_FORMAT, "version": 1}), ("run-evil", {"x": _Evil()})):
        folder = RunFolder(root / name)
        folder.create()
        folder.write_config(cfg)
        folder.save(model, {"format": STATE_FORMAT}, step=1)
        torch.save(state, folder.checkpoint_dir / "step_00000001.state.pt")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) -> its content hash, link target or "dir"."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            result[rel] = "dir"
        else:
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def run_cli(argv: list[str], capsys) -> tuple[int, list[str], str]:
    """Run ``ostnet`` in this process; returns (exit status, stderr lines, stderr). Python warnings, which
    a real run prints on stderr, count as lines too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    # the random-VGG warning is what the training cases ask for (no ImageNet weights in the test machine)
    shown = [w for w in caught if "RANDOM VGG-19" not in str(w.message)]
    err = capsys.readouterr().err + "".join(f"{w.category.__name__}: {w.message}\n" for w in shown)
    return code, [line for line in err.splitlines() if line.strip()], err


def assert_one_line_failure(code: int, lines: list[str], err: str, expect: str, status: int = 2) -> None:
    assert code == status, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    assert expect in lines[0], lines[0]


def animate(w: Path, *extra: str, source: str = "face.png", driving: str = "clip.mp4", ckpt: str = "tiny") -> list:
    args = ["animate", "--quiet", "--no-crop", "--source", str(w / source), "--driving", str(w / driving)]
    return [*args, "--checkpoint", str(w / f"{ckpt}.safetensors"), *extra]


def to_video(**inputs: str):
    """The argv of ``animate`` into the world's o.mp4, as a table entry (a function of the world folder)."""
    return lambda w: animate(w, "--output", str(w / "o.mp4"), **inputs)


def _failing(world: Path, capsys, argv: list[str], expect: str, status: int = 2) -> None:
    before = snapshot(world)
    code, lines, err = run_cli(argv, capsys)
    assert_one_line_failure(code, lines, err, expect, status)
    assert snapshot(world) == before, "the failed command changed, added or removed files"
    assert not (world / "PWNED").exists()


# --------------------------------------------------------------------------------------------------------
# 1. An output that is an input; 2. a run folder that ostnet did not make
# --------------------------------------------------------------------------------------------------------

EVAL = ["--protocol", "same-scale", "--no-face-metrics", "--no-progress", "--num-pairs", "2"]
SAME_PATH = {
    "animate-output-is-driving": lambda w: (animate(w, "--output", str(w / "clip.mp4")), "is the input --driving"),
    "animate-output-via-dotdot": lambda w: (
        animate(w, "--output", str(w / "data" / ".." / "clip.mp4")),
        "is the input --driving",
    ),
    "animate-output-is-a-symlink-to-driving": lambda w: (
        animate(w, "--output", str(w / "symlink.mp4")),
        "is the input --driving",
    ),
    "animate-output-is-a-hardlink-to-driving": lambda w: (
        animate(w, "--output", str(w / "hardlink.mp4")),
        "is the input --driving",
    ),
    "animate-output-is-source": lambda w: (animate(w, "--output", str(w / "face.png")), "is the input --source"),
    "animate-output-is-checkpoint": lambda w: (
        animate(w, "--output", str(w / "tiny.safetensors")),
        "is the input --checkpoint",
    ),
    "animate-frames-is-output": lambda w: (
        animate(w, "--output", str(w / "new.mp4"), "--frames", str(w / "new.mp4")),
        "collides with --output",
    ),
    "animate-output-inside-frames": lambda w: (
        animate(w, "--output", str(w / "fr" / "o.mp4"), "--frames", str(w / "fr")),
        "collides with --output",
    ),
    "convert-fomm-output-is-input": lambda w: (
        ["convert-fomm", str(w / "fomm.pth.tar"), "--output", str(w / "fomm.pth.tar")],
        "is the input",
    ),
    "evaluate-output-is-data": lambda w: (
        [
            "evaluate",
            "--checkpoint",
            str(w / "tiny.safetensors"),
            "--data",
            str(w / "data"),
            "--output",
            str(w / "data"),
            *EVAL,
        ],
        "is the input --data",
    ),  # fmt: skip
    "evaluate-pairs-inside-output": lambda w: (
        [
            "evaluate",
            "--checkpoint",
            str(w / "tiny.safetensors"),
            "--data",
            str(w / "data"),
            "--output",
            str(w / "evalout"),
            "--pairs",
            str(w / "evalout" / "pairs.csv"),
            *EVAL,
        ],
        "holds the input --pairs",
    ),  # fmt: skip
    "train-output-is-data": lambda w: (
        ["train", "--preset", "tiny", "--data", str(w / "data"), "--output", str(w / "data")],
        "is the input --data",
    ),
    "prepare-output-is-input": lambda w: (["prepare", str(w / "data"), "--output", str(w / "data")], "is the input"),
    "export-output-folder-holds-the-checkpoint": lambda w: (
        ["export", str(w / "tiny.safetensors"), "--output", str(w)],
        "holds the input CKPT",
    ),
    "inspect-output-folder-is-the-dataset": lambda w: (
        [
            "inspect",
            str(w / "tiny.safetensors"),
            "--source",
            str(w / "face.png"),
            "--driving",
            str(w / "clip.mp4"),
            "--output",
            str(w),
        ],
        "holds the input",
    ),  # fmt: skip
    "edit-output-is-source": lambda w: (
        [
            "edit",
            "--source",
            str(w / "face.png"),
            "--checkpoint",
            str(w / "tiny.safetensors"),
            "--output",
            str(w / "face.png"),
        ],
        "is the input --source",
    ),  # fmt: skip
    "live-output-is-the-camera-clip": lambda w: (
        [
            "live",
            "--source",
            str(w / "face.png"),
            "--checkpoint",
            str(w / "tiny.safetensors"),
            "--camera",
            str(w / "clip.mp4"),
            "--output",
            str(w / "clip.mp4"),
            "--no-window",
        ],
        "is the input --camera",
    ),  # fmt: skip
    # 2: a folder of the user's: their config.json and .*.tmp files must survive
    "train-into-a-folder-ostnet-did-not-make": lambda w: (
        ["train", "--preset", "tiny", "--data", str(w / "data"), "--output", str(w / "mine")],
        "is not an ostnet run folder",
    ),
}


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_no_output_is_an_input(world, capsys, case):
    argv, expect = SAME_PATH[case](world)
    _failing(world, capsys, argv, expect)


def test_cleanup_touches_only_ostnet_names(tmp_path):
    """A run folder's stale-temporary and pruning clean-up deletes only names ostnet writes."""
    folder = RunFolder(tmp_path / "run", keep_last=1)
    folder.create()
    mine = [folder.root / ".notes.tmp", folder.checkpoint_dir / "step_mine.txt", folder.checkpoint_dir / ".x.tmp"]
    for path in mine:
        path.write_text("the user's")
    ours = folder.checkpoint_dir / ".step_00000001.ostnet-abcd1234.part.safetensors"
    ours.write_text("a killed run's temporary")
    folder.remove_stale_temporaries()
    model = build_model("tiny")
    for step in (1, 2):
        folder.save(model, {"format": STATE_FORMAT}, step)
    assert all(path.read_text() == "the user's" for path in mine)
    assert not ours.exists()
    assert sorted(p.name for p in folder.checkpoint_dir.glob("step_0*")) == [
        "step_00000002.safetensors",
        "step_00000002.state.pt",
    ]


# --------------------------------------------------------------------------------------------------------
# 3, 4. Resource exhaustion: configs that do not match their tensors, images and videos over the limits
# --------------------------------------------------------------------------------------------------------

RESOURCES = {
    "checkpoint-config-asks-for-2^20-widths": (  # refused by the config's bounds before any shape is compared
        to_video(ckpt="huge"),
        "generator.block_expansion must be in",
        {},
    ),
    "checkpoint-config-asks-for-4096-widths": (  # in bounds: refused by the comparison with the stored shapes
        to_video(ckpt="wide"),
        "does not match the stored tensors",
        {},
    ),
    "checkpoint-config-another-num_kp": (
        to_video(ckpt="mismatch"),
        "does not match the stored tensors",
        {},
    ),
    "checkpoint-missing-a-tensor": (
        to_video(ckpt="missing"),
        "1 missing",
        {},
    ),
    "png-claiming-60000x60000": (
        to_video(source="bomb.png"),
        "over the limit of 64; set OSTNET_MAX_IMAGE_MEGAPIXELS",
        {},
    ),
    "video-frame-over-the-limit": (
        to_video(),
        "set OSTNET_MAX_FRAME_MEGAPIXELS",
        {"OSTNET_MAX_FRAME_MEGAPIXELS": "0.001"},
    ),
    "video-longer-than-the-limit": (
        to_video(),
        "6 frames is over the limit of 3",
        {"OSTNET_MAX_VIDEO_FRAMES": "3"},
    ),
    "limit-variable-not-a-number": (
        to_video(),
        "OSTNET_MAX_VIDEO_FRAMES='many': must be a positive number",
        {"OSTNET_MAX_VIDEO_FRAMES": "many"},
    ),
}


@pytest.mark.parametrize("case", list(RESOURCES))
def test_resource_limits(world, capsys, monkeypatch, case):
    build, expect, env = RESOURCES[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _failing(world, capsys, build(world), expect)


# --------------------------------------------------------------------------------------------------------
# 6, 7, 8, 9. Values, files and pickles that are not what they claim to be
# --------------------------------------------------------------------------------------------------------


def _pairs(w: Path, tmp: Path, alpha: str, beta: str) -> str:
    frames = sorted((w / "data" / "test").glob("*/*.png"))
    path = tmp / "pairs.csv"
    path.write_text(f"source,driving,frame,alpha,beta\n{frames[0]},{frames[1]},,{alpha},{beta}\n")
    return str(path)


def _evaluate(w: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", str(w / "tiny.safetensors"), "--data", str(w / "data"), "--output",
            str(out), "--no-face-metrics", "--no-progress", *extra]  # fmt: skip


BAD_VALUES = {
    "smooth-nan": (lambda w, t: animate(w, "--output", str(t / "o.mp4"), "--smooth", "nan"), "--smooth"),
    "smooth-inf": (lambda w, t: animate(w, "--output", str(t / "o.mp4"), "--smooth", "inf"), "--smooth"),
    "margin-nan": (lambda w, t: animate(w, "--output", str(t / "o.mp4"), "--margin", "nan"), "--margin"),
    "synth-motion-nan": (lambda w, t: ["synth", "--output", str(t / "s"), "--motion", "nan"], "--motion"),
    "evaluate-delta-inf": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "different-scale", "--delta", "inf"),
        "--delta",
    ),
    "prepare-zero-workers": (
        lambda w, t: ["prepare", str(w / "clip.mp4"), "--output", str(t / "p"), "--workers", "0"],
        "--workers",
    ),
    "animate-crf-above-h264-range": (lambda w, t: animate(w, "--output", str(t / "o.mp4"), "--crf", "99"), "--crf"),
    "evaluate-delta-above-one": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "different-scale", "--delta", "1.5"),
        "--delta",
    ),
    "evaluate-negative-samples": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "same-scale", "--samples", "-1"),
        "--samples",
    ),
    "live-negative-max-seconds": (
        lambda w, t: [
            "live",
            "--source",
            str(w / "face.png"),
            "--checkpoint",
            str(w / "tiny.safetensors"),
            "--camera",
            "0",
            "--max-seconds",
            "-1",
        ],  # fmt: skip
        "--max-seconds",
    ),
    "pairs-alpha-nan-beta-inf": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "different-scale", "--pairs", _pairs(w, t, "nan", "inf")),
        "alpha and beta must be positive finite numbers",
    ),
    "pairs-csv-is-binary": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "same-scale", "--pairs", str(w / "binary.csv")),
        "not a text CSV pair list",
    ),
    "pairs-outside-the-dataset": (
        lambda w, t: _evaluate(w, t / "e", "--protocol", "same-scale", "--pairs", _outside_pairs(w, t)),
        "is outside the dataset",
    ),
    "convert-fomm-output-is-a-folder": (
        lambda w, t: ["convert-fomm", str(w / "fomm.pth.tar"), "--output", str(w / "empty")],
        "is a folder, expected a file name",
    ),
    "training-state-with-missing-keys": (
        lambda w, t: ["train", "--output", str(w / "run-partial"), "--resume", "--quiet"],
        "incomplete ostnet training state (missing progress",
    ),
    "training-state-is-a-malicious-pickle": (
        lambda w, t: ["train", "--output", str(w / "run-evil"), "--resume", "--quiet"],
        "not a trusted ostnet training state",
    ),
}


def _outside_pairs(w: Path, tmp: Path) -> str:
    frames = sorted((w / "data" / "test").glob("*/*.png"))
    path = tmp / "outside.csv"
    path.write_text(f"source,driving,frame\n{frames[0]},{w / 'face.png'},\n")
    return str(path)


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_and_files(world, capsys, tmp_path, case):
    build, expect = BAD_VALUES[case]
    argv = build(world, tmp_path)
    inputs = sorted(tmp_path.iterdir())
    _failing(world, capsys, argv, expect)
    assert sorted(tmp_path.iterdir()) == inputs  # nothing written beside the inputs either


# --------------------------------------------------------------------------------------------------------
# 10, 11. Clean stops and clean failures: SIGTERM, validate first
# --------------------------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), **extra}


def test_sigterm_during_animate_cleans_up_and_exits_143(world, tmp_path):
    clip = _clip(tmp_path / "long.mp4", 400, size=48)
    out = tmp_path / "out"
    out.mkdir()
    argv = animate(world, "--output", str(out / "o.mp4"), "--frames", str(out / "frames"), "--batch-size", "1")
    argv[argv.index(str(world / "clip.mp4"))] = str(clip)
    returncode, err = signal_while_writing(
        [sys.executable, "-m", "ostnet.cli", *argv], _env(), out, "o.mp4", signal.SIGTERM
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert returncode == 143, err
    assert lines == ["ostnet animate: terminated; no partial output was kept"], err
    assert list(out.iterdir()) == []


def _corrupt_dataset(root: Path, corrupt_every: int = 1) -> Path:
    write_synthetic_dataset(root, num_identities=2, videos_per_identity=1, num_frames=4, test_identities=0)
    frames = sorted((root / "train").glob("*/*.png"))
    for i, frame in enumerate(frames):
        if i % corrupt_every == 0:
            frame.write_bytes(b"not a png")
    return root


VALIDATE_FIRST = {
    "animate-bad-source-into-missing-folders": (
        lambda w, t: animate(w, "--output", str(t / "new" / "sub" / "o.mp4"), source="binary.csv"),
        "binary.csv",
    ),
    "animate-bad-checkpoint-into-missing-folders": (
        lambda w, t: animate(w, "--output", str(t / "new" / "o.mp4"), "--frames", str(t / "new" / "f"), ckpt="huge"),
        "huge.safetensors",
    ),
    "evaluate-bad-checkpoint": (
        lambda w, t: [
            *_evaluate(w, t / "new")[:2],
            str(w / "fomm.pth.tar"),
            *_evaluate(w, t / "new")[3:],
            "--protocol",
            "same-scale",
        ],
        "not an ostnet checkpoint",
    ),  # fmt: skip
    "train-every-frame-corrupt": (
        lambda w, t: [
            "train",
            "--preset",
            "tiny",
            "--data",
            str(_corrupt_dataset(t / "bad")),
            "--output",
            str(t / "new"),
            "--max-steps",
            "1",
            "--quiet",
            "--set",
            "data.num_workers=0",
            "--set",
            "loss.allow_random_vgg=true",
        ],
        "unreadable",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(VALIDATE_FIRST))
def test_failed_runs_create_nothing(world, capsys, tmp_path, case):
    build, expect = VALIDATE_FIRST[case]
    argv = build(world, tmp_path)
    _failing(world, capsys, argv, expect)
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------------------------------------
# 5, 12. Disk full (a small tmpfs) and permissions (the command run as nobody)
# --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(size_kb: int):
    folder = Path(tempfile.mkdtemp(prefix="ostnet-tmpfs-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        folder.rmdir()
        unavailable(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)


@pytest.mark.parametrize("target", ["video", "frames"])
def test_disk_full_keeps_the_old_output(world, capsys, target):
    with small_disk(256) as disk:
        old = disk / "old.mp4"
        shutil.copy(world / "clip.mp4", old)
        frames = disk / "frames"
        _fill(disk / "filler")
        argv = animate(world, "--output", str(old), "--crf", "0")
        if target == "frames":
            argv = animate(world, "--output", str(world / ".." / "frames-out.mp4"), "--frames", str(frames))
        big = _clip(world.parent / "big.mp4", 12, size=128)
        argv[argv.index(str(world / "clip.mp4"))] = str(big)
        before = snapshot(disk)
        code, lines, err = run_cli(argv, capsys)
        assert_one_line_failure(code, lines, err, "No space left on device")
        assert snapshot(disk) == before  # the old output is byte-identical, no temporary file is left
        assert not (world.parent / "frames-out.mp4").exists()


_AS_NOBODY = """
import contextlib, io, json, sys
from ostnet.cli import main
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results[name] = [main(argv), err.getvalue()]
print(json.dumps(results))
"""

PERMISSIONS = {
    "unreadable-checkpoint": "permission denied",
    "unreadable-prepare-input-folder": "permission denied",
    "unwritable-output-folder": "not writable",
}


@pytest.fixture(scope="module")
def as_nobody(world):
    """Every permission case run by one ``python`` process as ``nobody`` (one start-up for all); returns
    (case -> (exit status, stderr), the snapshots of the folder before and after)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        unavailable("running a command as another user needs root and setpriv")
    folder = Path(tempfile.mkdtemp(prefix="ostnet-perm-"))  # pytest's tmp_path is private to root
    try:
        folder.chmod(0o755)
        for name in ("face.png", "clip.mp4", "tiny.safetensors"):
            shutil.copy(world / name, folder / name)
            (folder / name).chmod(0o644)
        shutil.copy(world / "tiny.safetensors", folder / "secret.safetensors")
        (folder / "secret.safetensors").chmod(0o600)
        (folder / "videos").mkdir(mode=0o700)
        (folder / "locked").mkdir(mode=0o555)
        cases = {
            "unreadable-checkpoint": animate(folder, "--output", str(folder / "o.mp4"), ckpt="secret"),
            "unreadable-prepare-input-folder": ["prepare", str(folder / "videos"), "--output", str(folder / "ds")],
            "unwritable-output-folder": animate(folder, "--output", str(folder / "locked" / "o.mp4")),
        }
        before = snapshot(folder)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", _AS_NOBODY]
        proc = subprocess.run([*cmd, json.dumps(cases)], env=_env(), capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
        yield json.loads(proc.stdout.strip().splitlines()[-1]), before, snapshot(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("case", list(PERMISSIONS))
def test_permissions_are_named(as_nobody, case):
    results, before, after = as_nobody
    code, err = results[case]
    assert_one_line_failure(code, [line for line in err.splitlines() if line.strip()], err, PERMISSIONS[case])
    assert after == before


# --------------------------------------------------------------------------------------------------------
# 12, 15, 16, 17, 18. What must work, and say what it did
# --------------------------------------------------------------------------------------------------------


def test_frames_into_an_existing_empty_folder(world, capsys, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    code, lines, err = run_cli(animate(world, "--output", str(tmp_path / "o.mp4"), "--frames", str(frames)), capsys)
    assert code == 0, err
    assert sorted(p.name for p in frames.iterdir()) == [f"{i:06d}.png" for i in range(6)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "o.mp4"]


def test_nan_weights_warn_once(world, capsys, tmp_path):
    code, lines, err = run_cli(animate(world, "--output", str(tmp_path / "o.mp4"), ckpt="nan"), capsys)
    assert code == 0, err
    assert len(lines) == 1 and "not finite" in lines[0] and "6 of 6 frames" in lines[0], err


def test_pairs_outside_the_dataset_with_allow_outside(world):
    from ostnet.evaluation.protocols import read_pairs_csv, validate_pairs

    listing = _outside_pairs(world, world.parent)
    validate_pairs(read_pairs_csv(listing), world / "data", listing, allow_outside=True)  # no error


def test_checkpoint_labels_tell_runs_apart():
    assert checkpoint_labels(["runs/a/final.safetensors", "runs/b/final.safetensors"]) == ["a-final", "b-final"]
    assert checkpoint_labels(["x/a/checkpoints/step_1.safetensors", "x/b/checkpoints/step_1.safetensors"]) == [
        "a-step_1",
        "b-step_1",
    ]
    assert checkpoint_labels(["m.safetensors", "m.safetensors", "n.safetensors"]) == ["m", "m-2", "n"]


def test_skipped_pairs_are_counted_once_per_epoch(tmp_path, caplog):
    """Corrupt frames with two DataLoader workers: no per-worker warnings; one count per epoch, one total."""
    import logging

    from ostnet.training.trainer import Trainer

    data = _corrupt_dataset(tmp_path / "data", corrupt_every=3)
    overrides = [f"data.root={json.dumps(str(data))}", "data.num_workers=2", "data.batch_size=1", "max_steps=2",
                 "loss.allow_random_vgg=true"]  # fmt: skip
    cfg = C.apply_overrides(C.train_preset("tiny"), overrides)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        Trainer(cfg, tmp_path / "run", show_progress=False).fit()
    assert not [w for w in caught if "unreadable" in str(w.message)]
    epochs = [r.message for r in caplog.records if "unreadable training pair" in r.message and "epoch" in r.message]
    totals = [r.message for r in caplog.records if "in total" in r.message]
    assert len(epochs) == 1 and len(totals) == 1, caplog.text
