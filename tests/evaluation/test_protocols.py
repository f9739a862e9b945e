"""Protocols: DaGAN-style sampling, the different-scale construction, CSV round trips, frame references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ostnet.data.dataset import VideoEntry
from ostnet.errors import OstnetError
from ostnet.evaluation import protocols as P


def _fake_videos(n: int, frames: int = 50, ids: int | None = None) -> tuple[list[VideoEntry], dict[str, int]]:
    ids = ids or n
    videos = [
        VideoEntry(f"id{i % ids:03d}#v{i:03d}.mp4", f"id{i % ids:03d}", Path(f"/d/test/id{i % ids:03d}#v{i:03d}.mp4"),
                   "video")
        for i in range(n)
    ]  # fmt: skip
    return videos, {v.name: frames + (i % 7) for i, v in enumerate(videos)}


def _counter(counts):
    return lambda entry: counts[entry.name]


def _split(ref: str) -> tuple[str, int]:
    file, _, index = ref.rpartition("#")
    return file, int(index)


def test_same_scale_follows_the_dagan_recipe():
    videos, counts = _fake_videos(150)
    pairs = P.sample_same_scale(videos, seed=3, counter=_counter(counts))
    assert len(pairs) == 2083 and [p.pair_id for p in pairs] == list(range(2083))
    used = set()
    for p in pairs:
        (s_file, s), (d_file, d) = _split(p.source), _split(p.driving)
        assert s_file == d_file and s != d  # same video, two distinct frames
        assert 0 <= s < counts[Path(s_file).name] and 0 <= d < counts[Path(s_file).name]
        used.add(s_file)
    assert len(used) == 100  # min(100, n) videos


def test_small_sets_use_every_video_and_seed_is_deterministic():
    videos, counts = _fake_videos(8)
    a = P.sample_same_scale(videos, num_pairs=200, seed=0, counter=_counter(counts))
    b = P.sample_same_scale(videos, num_pairs=200, seed=0, counter=_counter(counts))
    c = P.sample_same_scale(videos, num_pairs=200, seed=1, counter=_counter(counts))
    assert a == b and a != c
    assert len({_split(p.source)[0] for p in a}) == 8


def test_single_frame_videos_are_skipped():
    videos, counts = _fake_videos(3)
    counts[videos[0].name] = 1
    pairs = P.sample_same_scale(videos, num_pairs=50, counter=_counter(counts))
    assert all(videos[0].name not in p.source for p in pairs)
    with pytest.raises(OstnetError, match="two or more frames"):
        P.sample_same_scale(videos[:1], counter=_counter(counts))
    with pytest.raises(OstnetError, match="no test videos"):
        P.sample_same_scale([], counter=_counter(counts))


def test_different_scale_doubles_the_same_scale_list():
    videos, counts = _fake_videos(120)
    same = P.sample_same_scale(videos, seed=5, counter=_counter(counts))
    diff = P.make_different_scale(same, delta=0.3, seed=5)
    assert len(diff) == 4166 == 2 * len(same)  # the paper's count
    assert [(p.source, p.driving) for p in diff[::2]] == [(p.source, p.driving) for p in same]
    assert [(p.source, p.driving) for p in diff[1::2]] == [(p.source, p.driving) for p in same]
    factors = np.array([(p.alpha, p.beta) for p in diff])
    assert factors.min() >= 0.7 and factors.max() <= 1.3
    assert abs(factors.mean() - 1.0) < 0.02 and factors.std() > 0.15  # uniform on [0.7, 1.3]: std 0.173
    assert not np.allclose(factors[::2], factors[1::2])  # two different augmentations per pair
    assert diff == P.make_different_scale(same, delta=0.3, seed=5)


def test_reconstruction_uses_frame_zero_as_source():
    videos, counts = _fake_videos(3)
    pairs = P.sample_reconstruction(videos, counter=_counter(counts))
    assert len(pairs) == sum(counts.values())
    first = [p for p in pairs if _split(p.source)[0] == str(videos[0].path)]
    assert {_split(p.source)[1] for p in first} == {0}
    assert [_split(p.driving)[1] for p in first] == list(range(counts[videos[0].name]))
    assert len(P.sample_reconstruction(videos, num_videos=1, counter=_counter(counts))) == len(first)


def test_cross_identity_pairs_have_different_identities():
    videos, counts = _fake_videos(12, ids=3)
    pairs = P.sample_cross_identity(videos, num_pairs=300, seed=2, counter=_counter(counts))
    assert len(pairs) == 300
    for p in pairs:
        assert Path(_split(p.source)[0]).name[:5] != Path(_split(p.driving)[0]).name[:5]
    with pytest.raises(OstnetError, match="two identities"):
        P.sample_cross_identity(_fake_videos(4, ids=1)[0], counter=_counter(counts))


def test_csv_round_trip_in_dagan_format(tmp_path):
    videos, counts = _fake_videos(5)
    same = P.sample_same_scale(videos, num_pairs=30, counter=_counter(counts))
    diff = P.make_different_scale(same)
    for pairs, name in ((same, "same.csv"), (diff, "diff.csv")):
        path = P.write_pairs_csv(tmp_path / name, pairs)
        assert P.read_pairs_csv(path) == pairs
    raw = (tmp_path / "same.csv").read_bytes()
    assert raw.startswith(b"source,driving,frame\r\n") and raw.count(b"\r\n") == 31  # CRLF, as DaGAN's file
    assert (tmp_path / "diff.csv").read_text().splitlines()[0] == "source,driving,frame,alpha,beta"
    with pytest.raises(OstnetError, match="alpha,beta"):
        P.read_pairs_csv(tmp_path / "same.csv", require_scale=True)


def test_reads_a_dagan_row_and_resolves_frame_folders(tmp_path):
    folder = tmp_path / "test" / "id10282#Zbz058o9j6s#004557#004656.mp4"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(folder / f"{i:07d}.png")
    rel = "test/id10282#Zbz058o9j6s#004557#004656.mp4"
    csv_path = tmp_path / "list.csv"
    csv_path.write_bytes(f"source,driving,frame\r\n{rel}/0000002.png,{rel}/0000000.png,\r\n".encode())
    (pair,) = P.read_pairs_csv(csv_path)
    ref = P.parse_frame_ref(pair.source, tmp_path)
    assert ref.entry.kind == "frames" and ref.index == 2 and ref.entry.identity == "id10282"
    assert P.format_frame_ref(ref.entry, 2) == str(folder / "0000002.png")
    P.validate_pairs([pair], tmp_path, "list.csv")
    frames = P.FrameLoader(tmp_path).load([pair.source, pair.driving], 4)
    assert frames[0].shape == (3, 4, 4) and frames[0][0, 0, 0].item() == pytest.approx(2 / 255)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a,b\r\nx,y\r\n", "expected the header"),
        ("source,driving,frame\r\n", "no pairs"),
        ("source,driving,frame\r\nonly-one-column\r\n", "line 2"),
        ("source,driving,frame,alpha,beta\r\nx.png,y.png,,1.1,zero\r\n", "must be numbers"),
    ],
)
def test_malformed_csv(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content, newline="")
    with pytest.raises(OstnetError, match=match):
        P.read_pairs_csv(tmp_path / "bad.csv")


def test_csv_naming_missing_frames_is_an_error(tmp_path, shared_dir):
    clip = shared_dir / "data" / "clips" / "d0.mp4"  # 78 frames
    pairs = [P.Pair(0, f"{clip}#0", f"{clip}#77"), P.Pair(1, f"{clip}#1", str(tmp_path / "gone.png"))]
    with pytest.raises(OstnetError, match="pair 1: .*gone.png: frame not found"):
        P.validate_pairs(pairs, None, "list.csv")
    with pytest.raises(OstnetError, match="names frame 78, but .* has 78 frames"):
        P.validate_pairs([P.Pair(0, f"{clip}#0", f"{clip}#78")], None, "list.csv")
    with pytest.raises(OstnetError, match="video not found"):
        P.parse_frame_ref("missing.mp4#3", tmp_path)


def test_sampling_real_clips(tmp_path, shared_dir):
    (tmp_path / "test").mkdir()
    for clip in ("d0.mp4", "d11.mp4", "d12.mp4"):
        (tmp_path / "test" / clip).symlink_to(shared_dir / "data" / "clips" / clip)
    pairs = P.build_pairs("same-scale", tmp_path, opts=P.SamplingOptions(num_pairs=40, seed=0))
    assert pairs == P.build_pairs("same-scale", tmp_path, opts=P.SamplingOptions(num_pairs=40, seed=0))
    assert {Path(_split(p.source)[0]).name for p in pairs} == {"d0.mp4", "d11.mp4", "d12.mp4"}
    P.validate_pairs(pairs, tmp_path, "sampled")
    loaded = P.FrameLoader(tmp_path).load([pairs[0].source, pairs[0].driving], 32)
    assert all(x.shape == (3, 32, 32) for x in loaded)


def test_unknown_protocol_and_empty_dataset(tmp_path):
    with pytest.raises(OstnetError, match="unknown protocol 'bogus'; choose one of: same-scale"):
        P.check_protocol("bogus")
    (tmp_path / "test").mkdir()
    with pytest.raises(OstnetError, match="no videos found"):
        P.build_pairs("same-scale", tmp_path)


def test_relative_dataset_root_gives_loadable_pairs(tmp_path, monkeypatch):
    """A relative --data (e.g. `demo/data`) must not be resolved twice when the pair list is read back."""
    for name in ("a#v0.mp4", "b#v0.mp4"):
        folder = tmp_path / "ds" / "test" / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i, i, i)).save(folder / f"{i:07d}.png")
    monkeypatch.chdir(tmp_path)
    pairs = P.build_pairs("same-scale", "ds", "test", P.SamplingOptions(num_pairs=4, num_videos=2, seed=0))
    P.write_pairs_csv("pairs.csv", pairs)
    again = P.read_pairs_csv("pairs.csv")
    P.validate_pairs(again, "ds", "pairs.csv")
    frames = P.FrameLoader("ds").load([p.source for p in again], 4)
    assert all(not isinstance(f, OstnetError) for f in frames)
