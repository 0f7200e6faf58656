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


def test_an_existing_file_whose_name_looks_like_a_glob_is_that_file(tmp_path):
    """``photo [1].jpg`` names a file: read as a pattern it would match ``photo 1.jpg`` (or nothing)."""
    import cv2

    named = tmp_path / "photo [1].png"
    cv2.imwrite(str(named), np.zeros((4, 5, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "photo 1.png"), np.zeros((4, 5, 3), np.uint8))
    assert resolve_images(str(named)) == [str(named)]
    assert resolve_images(str(tmp_path / "photo [1]*")) == [str(tmp_path / "photo 1.png")]  # no such file: a pattern


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
        (np.zeros((4, 4, 3), np.float32), "float array"),
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


def _files_of_one_picture(folder):
    """The demo picture stored as a user might have it: a JPEG rotated by EXIF (Orientation 6), and PNGs in RGBA,
    grey (L), palette (P) and 16-bit grey (I;16) modes."""
    import cv2
    from PIL import ImageOps

    demo = Image.open("assets/demo.jpg").convert("RGB")
    rotated = demo.transpose(Image.Transpose.ROTATE_90)  # stored sideways; the EXIF tag turns it upright
    exif = rotated.getexif()
    exif[0x0112] = 6
    files = {"exif": folder / "exif" / "a.jpg"}
    files["exif"].parent.mkdir()
    rotated.save(files["exif"], exif=exif, quality=95)
    assert ImageOps.exif_transpose(Image.open(files["exif"])).size == demo.size
    for mode in ("RGBA", "L", "P"):
        files[mode] = folder / mode / "a.png"
        files[mode].parent.mkdir()
        demo.convert(mode).save(files[mode])
    files["I;16"] = folder / "I16" / "a.png"
    files["I;16"].parent.mkdir()
    grey = np.asarray(demo.convert("L")).astype(np.uint16) * 257 + 3  # a real 16-bit image, not 8 bits shifted
    cv2.imwrite(str(files["I;16"]), grey)
    assert Image.open(files["I;16"]).mode in ("I;16", "I")
    return files


def test_every_input_route_gives_the_same_boxes(tmp_path):
    """Path, folder, glob, cv2.imread array, PIL image (each common mode) and torch tensor: one picture, one result."""
    import cv2
    import torch

    import ovdet

    model = ovdet.load().set_classes(["red circle", "purple star", "blue ring", "yellow cross", "green triangle"])
    for kind, path in _files_of_one_picture(tmp_path).items():
        bgr = cv2.imread(str(path))
        tensor = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float() / 255  # ultralytics: RGB [0, 1]
        routes = {
            "path": str(path), "folder": path.parent, "glob": str(path.parent / "*"), "cv2 array": bgr,
            "PIL": Image.open(path), "tensor": tensor, "batched tensor": tensor[None],
        }  # fmt: skip
        results = {name: model.predict(source, conf=0.05)[0] for name, source in routes.items()}
        reference = results["path"]
        assert len(reference) >= (1 if kind in ("L", "I;16") else 3), kind  # grey pictures lose the colours
        for name, result in results.items():
            assert result.orig_shape == reference.orig_shape, (kind, name)
            assert result.class_ids.tolist() == reference.class_ids.tolist(), (kind, name)
            np.testing.assert_array_equal(result.boxes, reference.boxes, err_msg=f"{kind}: {name}")


def test_a_truncated_jpeg_decodes_as_cv2_imread_decodes_it(tmp_path):
    import cv2

    data = BUS.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    expected = cv2.imread(str(cut))
    assert expected is not None  # imread decodes what it can (the rest grey)
    np.testing.assert_array_equal(read_image(str(cut))[0], expected)


@pytest.mark.parametrize(
    "source, message",
    [
        (np.zeros((4, 4, 3), np.float64), "float array"),
        ("tensor-255", "divide by 255"),
        ("tensor-shape", r"\(3, H, W\) or \(B, 3, H, W\)"),
    ],
)
def test_ambiguous_arrays_and_tensors_are_refused(source, message):
    import torch

    if isinstance(source, str):
        source = torch.full((3, 8, 8), 200.0) if source == "tensor-255" else torch.zeros(8, 8, 3)
    with pytest.raises(SourceError, match=message):
        resolve_images(source)


def test_uint16_arrays_are_read_as_imread_reads_16_bit_files(tmp_path):
    import cv2

    grey = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    (item,) = resolve_images(grey)
    np.testing.assert_array_equal(item, read_image(str(tmp_path / "g.png"))[0])
