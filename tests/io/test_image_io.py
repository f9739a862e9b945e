"""Image loading of every pixel format, atomic saving, and the uint8 <-> float conversion."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ostnet.errors import OstnetError
from ostnet.io import atomic_output
from ostnet.io.image import load_image, save_image, to_tensor, to_uint8


def _png_rgb16(path: Path, pixels: np.ndarray) -> Path:
    """Write a 16-bit-per-channel RGB PNG by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3] = (200, 10, 30)
    rgba[0, 0, 3] = 0  # transparent -> white
    rgba[1, 1, 3] = 255  # opaque -> unchanged
    rgba[2, 2, 3] = 128  # half -> midway to white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(image[1, 1], [200, 10, 30])
    np.testing.assert_allclose(image[2, 2], [228, 132, 142], atol=2)


def test_grey_palette_and_sixteen_bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(grey[..., None], 3, axis=2))

    Image.fromarray(np.array([[0, 65535], [257 * 100, 257 * 7]], np.uint16)).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png")[..., 0], [[0, 255], [100, 7]])

    rgb16 = np.array([[[65535, 0, 257 * 50], [257 * 3, 257 * 200, 0]]], np.uint16)
    np.testing.assert_array_equal(load_image(_png_rgb16(tmp_path / "c16.png", rgb16)), [[[255, 0, 50], [3, 200, 0]]])

    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 1
    palette.save(tmp_path / "p.png", transparency=1)
    np.testing.assert_array_equal(
        load_image(tmp_path / "p.png")[:, :, :], [[[255, 0, 0], [255] * 3], [[255] * 3, [255, 0, 0]]]
    )


@pytest.mark.parametrize(("suffix", "tolerance"), [(".png", 0), (".webp", 12), (".jpg", 12)])
def test_save_load_round_trip(tmp_path, suffix, tolerance):
    ys, xs = np.mgrid[0:37, 0:53]
    image = np.stack([xs * 4, ys * 6, (xs + ys) * 2], axis=2).astype(np.uint8)
    save_image(tmp_path / f"x{suffix}", image)
    loaded = load_image(tmp_path / f"x{suffix}")
    assert loaded.shape == (37, 53, 3)
    assert np.abs(loaded.astype(int) - image).mean() <= tolerance
    assert [p.name for p in tmp_path.iterdir()] == [f"x{suffix}"]


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(image).save(tmp_path / "r.jpg", exif=exif, quality=100)
    loaded = load_image(tmp_path / "r.jpg")
    assert loaded.shape == (3, 2, 3)
    assert loaded[0, 1].mean() > 200  # the white corner moved from top-left to top-right


def _truncated_png(tmp: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp / "t.png")
    data = (tmp / "t.png").read_bytes()
    (tmp / "t.png").write_bytes(data[: len(data) // 2])
    return tmp / "t.png"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: tmp / "missing.png", "no such file"),
        (lambda tmp: (tmp / "t.png").write_text("hello") and tmp / "t.png", "not an image"),
        (_truncated_png, "truncated"),
        (lambda tmp: tmp, "folder"),
    ],
)
def test_bad_images_raise_naming_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(OstnetError) as info:
        load_image(path)
    assert str(info.value).startswith(str(path)) and problem in str(info.value)


def test_save_errors_and_atomicity(tmp_path):
    with pytest.raises(OstnetError, match="unknown image format"):
        save_image(tmp_path / "x.xyz", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        save_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
    (tmp_path / "old.png").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "old.png") as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert (tmp_path / "old.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]


def test_tensor_conversion_round_trip_and_conventions():
    values = np.arange(256, dtype=np.uint8).reshape(4, 64)
    image = np.stack([values, 255 - values, values // 2], axis=2)  # (4, 64, 3)
    tensor = to_tensor(image)
    assert tensor.shape == (3, 4, 64) and tensor.dtype == torch.float32
    assert tensor.min() == 0.0 and tensor.max() == 1.0
    assert tensor[0, 0, 1].item() == pytest.approx(1 / 255)
    np.testing.assert_array_equal(to_uint8(tensor), image)
    batch = to_tensor(np.stack([image, image]))
    assert batch.shape == (2, 3, 4, 64)
    out_of_range = torch.tensor([-0.5, 0.5 / 255 - 1e-4, 0.5 / 255 + 1e-4, 2.0]).view(1, 1, 4).expand(3, 1, 4)
    np.testing.assert_array_equal(to_uint8(out_of_range)[0, :, 0], [0, 0, 1, 255])
    readonly = image.copy()
    readonly.flags.writeable = False
    assert torch.equal(to_tensor(readonly), tensor)
    with pytest.raises(ValueError):
        to_tensor(image.astype(np.float32))
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(4, 5, 5))
