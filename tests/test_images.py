import numpy as np
import pytest
from PIL import Image

from ovdet.errors import SourceError
from ovdet.images import read_image, resolve_images
from tests.conftest import BUS, ZIDANE


def test_paths_folders_globs_and_lists_flatten_in_order(tmp_path):
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = resolve_images([str(BUS), tmp_path, str(tmp_path / "*.jpg")])
    assert items == [str(BUS), str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), str(tmp_path / "b.jpg")]


def test_arrays_and_pil_images_become_bgr():
    gray = np.zeros((4, 5), np.uint8)
    bgra = np.zeros((4, 5, 4), np.uint8)
    pil = Image.new("RGB", (5, 4), (255, 0, 0))
    items = resolve_images([gray, bgra, pil])
    assert all(item.shape == (4, 5, 3) for item in items)
    assert items[2][0, 0].tolist() == [0, 0, 255]  # red, in BGR


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing.jpg", "not found"),
        ([], "empty"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4, 2), np.uint8), "BGR"),
        (42, "cannot read images from a int"),
        ("https://example.com/a.jpg", "ovdet stream"),
        ("*.nothing-matches", "matches no image"),
    ],
)
def test_bad_sources_are_named(source, message):
    with pytest.raises(SourceError, match=message):
        resolve_images(source)


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no images in folder"):
        resolve_images(tmp_path)


def test_corrupt_file_is_named(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not really a jpeg")
    with pytest.raises(SourceError, match="bad.jpg"):
        read_image(str(bad))


def test_read_image_decodes():
    image, path = read_image(str(ZIDANE))
    assert image.shape == (720, 1280, 3) and path == str(ZIDANE)
