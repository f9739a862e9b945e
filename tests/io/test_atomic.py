"""The one atomic file writer and the one atomic folder writer (``ostnet.io.atomic``)."""

from __future__ import annotations

import pytest

from ostnet.errors import OstnetError
from ostnet.io.atomic import AtomicFolder, atomic_output, is_temporary, remove_temporaries, temp_path_for


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_file_writer_commits_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "out.mp4"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".mp4" and is_temporary(tmp)
        assert not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and names(target.parent) == ["out.mp4"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_file_writer_keeps_the_old_file_on_any_error(tmp_path, error):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(error), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise error
    assert target.read_bytes() == b"old" and names(tmp_path) == ["out.png"]


def test_file_writer_os_error_is_one_line_naming_the_path(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(OstnetError, match=r"out\.csv: cannot write"), atomic_output(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert names(tmp_path) == []
    with pytest.raises(OstnetError, match="cannot write"), atomic_output(target):
        pass  # nothing written: committing a missing temporary is an error, not silence
    with pytest.raises(OstnetError, match="is a folder"):
        temp_path_for(tmp_path)


def test_streaming_commit_and_discard_are_final(tmp_path):
    writer = atomic_output(tmp_path / "a.txt")
    writer.tmp.write_text("x")
    writer.discard()
    writer.commit()  # after discard: nothing happens
    assert names(tmp_path) == []
    writer = atomic_output(tmp_path / "a.txt")
    writer.tmp.write_text("y")
    writer.commit()
    writer.discard()  # after commit: the output stays
    assert (tmp_path / "a.txt").read_text() == "y"


def test_folder_writer_replaces_a_folder_only_when_complete(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), AtomicFolder(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise KeyboardInterrupt
    assert names(tmp_path) == ["data"] and names(target) == ["old.txt"]
    with AtomicFolder(target) as tmp:
        assert is_temporary(tmp) and tmp.is_dir()
        (tmp / "new.txt").write_text("new")
    assert names(tmp_path) == ["data"] and names(target) == ["new.txt"]


def test_folder_writer_never_started_writes_nothing(tmp_path):
    folder = AtomicFolder(tmp_path / "frames")
    folder.commit()
    assert names(tmp_path) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(OstnetError, match="not a folder"):
        AtomicFolder(tmp_path / "file")


def test_only_ostnet_temporaries_are_recognised_and_removed(tmp_path):
    ours = [temp_path_for(tmp_path / "ckpt.safetensors"), temp_path_for(tmp_path / "state.pt")]
    for path in ours:
        path.write_text("")
    folder = AtomicFolder(tmp_path / "clip.mp4").start()
    users = [".config.json.tmp", ".x.part", ".notes.ostnet-zzzzzzzz.part", "a.ostnet-1234abcd.part", "keep.txt"]
    for name in users:
        (tmp_path / name).write_text("")
    assert not any(is_temporary(tmp_path / name) for name in users)
    removed = remove_temporaries(tmp_path)
    assert sorted(removed) == sorted([*ours, folder])
    assert names(tmp_path) == sorted(users)
    assert remove_temporaries(tmp_path / "missing") == []
