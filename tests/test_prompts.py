"""VisualPrompt records, their checks and JSON form, and the command line's prompts file (ovdet/prompts.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ovdet.classes import normalize_classes
from ovdet.errors import SourceError, VocabularyError
from ovdet.prompts import VisualPrompt, prompt_from_json, prompt_to_json, read_prompts_file

IMAGE = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)  # h 60, w 80


def test_boxes_are_checked_and_kept_as_float32_xyxy(tmp_path, monkeypatch):
    prompt = VisualPrompt(IMAGE, [[10, 5, 30, 25], [0, 0, 80, 60]])
    assert prompt.boxes.dtype == np.float32 and prompt.boxes.shape == (2, 4)
    assert prompt.image_size == (60, 80) and prompt.source is None and prompt.image is IMAGE
    assert VisualPrompt(IMAGE, np.array([10, 5, 30, 25])).boxes.shape == (1, 4)  # one flat box
    assert VisualPrompt(IMAGE, [[10, 5, 30, 25]]) == VisualPrompt(IMAGE.copy(), [(10.0, 5.0, 30.0, 25.0)])
    assert VisualPrompt(IMAGE, [[10, 5, 30, 25]]) != VisualPrompt(IMAGE, [[10, 5, 30, 26]])
    cv2.imwrite(str(tmp_path / "ref.png"), IMAGE)
    monkeypatch.chdir(tmp_path)
    from_file = VisualPrompt("ref.png", [[10, 5, 30, 25]])  # a relative path is kept absolute
    assert from_file.source == str(tmp_path / "ref.png") and from_file == VisualPrompt(IMAGE, [[10, 5, 30, 25]])
    assert repr(from_file) == f"VisualPrompt({str(tmp_path / 'ref.png')!r}, 1 box)"


def test_images_decode_as_predict_decodes_them(tmp_path):
    from PIL import Image

    cv2.imwrite(str(tmp_path / "ref.png"), IMAGE)
    pil = Image.fromarray(IMAGE[..., ::-1].copy())  # RGB
    boxes = [[1, 2, 40, 50]]
    assert VisualPrompt(pil, boxes).sha1 == VisualPrompt(str(tmp_path / "ref.png"), boxes).sha1 == \
        VisualPrompt(IMAGE, boxes).sha1  # fmt: skip
    with pytest.raises(SourceError, match="one image, got 2"):
        cv2.imwrite(str(tmp_path / "other.png"), IMAGE)
        VisualPrompt(tmp_path, boxes)
    with pytest.raises(SourceError, match="not found"):
        VisualPrompt(tmp_path / "missing.jpg", boxes)
    (tmp_path / "clip.mp4").write_bytes(b"a video")  # not `ovdet stream`, which predict's message suggests
    with pytest.raises(SourceError, match="clip.mp4: it is a video; a visual prompt takes one image: save the frame"):
        VisualPrompt(tmp_path / "clip.mp4", boxes)
    with pytest.raises(SourceError, match="it is a URL; a visual prompt reads one local image file"):
        VisualPrompt("https://example.com/ref.jpg", boxes)


@pytest.mark.parametrize(
    ("boxes", "message"),
    [([["10", 5, 30, 25]], "must be numbers, got '10'"), ([[True, 5, 30, 25]], "must be numbers, got True"),
     ([[10, 5, 30]], r"shape \(M, 4\)"), ([[10, 5, 30, 25], [1, 2]], r"\[\[x0, y0, x1, y1\], ...\] \(four"),
     ([[10, 5, float("nan"), 25]], "not finite"), ([], "no boxes"), ([[30, 5, 10, 25]], "empty or flat"),
     ([[10, 5, 10, 25]], "empty or flat"), ([[10, 5, 90, 25]], r"reaches outside the image \(80x60 px\)"),
     ([[-1, 5, 30, 25]], "reaches outside"), (np.array([["a", "b", "c", "d"]]), "array of <U1")],
)  # fmt: skip
def test_each_bad_box_gets_one_clear_error(boxes, message):
    with pytest.raises(VocabularyError, match=message):
        VisualPrompt(IMAGE, boxes)


def test_records_round_trip_without_pixels(tmp_path):
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), IMAGE)
    prompt = VisualPrompt(str(path), [[10, 5, 30, 25]])
    record = json.loads(json.dumps(prompt_to_json(prompt)))  # what config.json holds
    assert record == {"image": str(path), "image_size": [60, 80], "sha1": prompt.sha1, "boxes": [[10, 5, 30, 25]]}
    kept = prompt_from_json(record)
    assert kept == prompt and np.array_equal(kept.image, IMAGE)  # the file is read again
    assert prompt_from_json("red circle") == prompt_to_json("red circle") == "red circle"
    read = prompt_from_json(json.loads(json.dumps(prompt_to_json(prompt.without_pixels(imgsz=(256, 320))))))
    assert read == prompt and read.imgsz == (256, 320)  # the size a model read it at travels; equality ignores it
    cv2.imwrite(str(path), 255 - IMAGE)
    with pytest.raises(SourceError, match="changed since"):
        kept.image  # noqa: B018
    with pytest.raises(SourceError, match="made from an image in memory"):
        VisualPrompt(IMAGE, [[1, 1, 20, 20]]).without_pixels().image  # noqa: B018


def test_classes_take_visual_prompts_beside_texts():
    prompt = VisualPrompt(IMAGE, [[10, 5, 30, 25]])
    names, prompts = normalize_classes({"widget": prompt, " logo ": ["logo", prompt]})
    assert names == ("widget", "logo") and prompts == ((prompt,), ("logo", prompt))
    with pytest.raises(VocabularyError, match="a visual prompt needs a class name"):
        normalize_classes([prompt])


def _write(folder, text: str, *, bom: bool = False):
    path = folder / "prompts.json"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_prompts_file_paths_are_relative_to_it_and_kept_absolute(tmp_path, monkeypatch):
    (tmp_path / "refs").mkdir()
    cv2.imwrite(str(tmp_path / "refs" / "a.png"), IMAGE)
    path = _write(tmp_path, json.dumps({"widget": [{"image": "refs/a.png", "boxes": [[10, 5, 30, 25], [0, 0, 9, 9]]}],
                                        "logo": ["logo", {"image": "refs/a.png", "boxes": [[1, 1, 20, 20]]}],
                                        "solo": {"image": "refs/a.png", "boxes": [1, 1, 20, 20]}}), bom=True)  # fmt: skip
    monkeypatch.chdir("/")
    classes = read_prompts_file(path)  # a BOM (Windows Notepad) is no part of the JSON: accepted
    assert list(classes) == ["widget", "logo", "solo"] and classes["logo"][0] == "logo"
    widget = classes["widget"][0]
    assert widget.source == str(tmp_path / "refs" / "a.png") and widget.boxes.tolist() == [[10, 5, 30, 25], [0, 0, 9, 9]]
    assert classes["solo"][0].boxes.shape == (1, 4)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [('{"widget": [', VocabularyError, "is not valid JSON: .* at line 1, column 13"),
     ('{"widget": ["a", "b",]}', VocabularyError, r"line 1, column 22 \(JSON allows no trailing commas"),
     ('["widget"]', VocabularyError, "must hold a JSON object mapping class names"),
     ("{}", VocabularyError, "names no class"),
     ('{"widget": []}', VocabularyError, "class 'widget' has no prompts"),
     ('{"a": "x", "a": "y"}', VocabularyError, "'a' appears twice"),
     ('{"widget": [{"image": "a.png"}]}', VocabularyError, r"prompt 1 must be .* exactly \"image\" and \"boxes\" \(it has 'image'\)"),
     ('{"widget": [{"image": 3, "boxes": [[1, 1, 5, 5]]}]}', VocabularyError, "\"image\" must be a path"),
     ('{"widget": [{"image": "gone.png", "boxes": [[1, 1, 5, 5]]}]}', SourceError, "image gone.png not found"),
     ('{"widget": [{"image": "a.png", "boxes": [[1, 1, 500, 5]]}]}', VocabularyError,
      r"class 'widget', prompt 1 \(a.png\): box \[1, 1, 500, 5\] reaches outside the image \(80x60 px\)"),
     ('{"w": ["w", {"image": "a.png", "boxes": [[5, 5, 5, 9]]}]}', VocabularyError, r"prompt 2 \(a.png\): box .* empty or flat"),
     ('{"widget": [{"image": "a.png", "boxes": [["1", 1, 5, 5]]}]}', VocabularyError, "must be numbers, got '1'"),
     ('{"widget": [{"image": "bad.png", "boxes": [[1, 1, 5, 5]]}]}', SourceError, "cannot decode image"),
     ('{"widget": [{"image": "sub", "boxes": [[1, 1, 5, 5]]}]}', SourceError,
      r"prompt 1: image sub is a folder; give one image file per prompt"),
     ('{"widget": [{"image": "clip.mp4", "boxes": [[1, 1, 5, 5]]}]}', SourceError,
      r"prompt 1 \(clip.mp4\): it is a video; a visual prompt takes one image: save the frame"),
     ('{"widget": [{"image": "sub/../a.png", "boxes": [[1, 1, 500, 5]]}]}', VocabularyError,
      r"prompt 1 \(sub/../a.png\): box \[1, 1, 500, 5\] reaches outside")],
)  # fmt: skip
def test_bad_prompts_files_get_one_clear_error(tmp_path, content, error, message):
    cv2.imwrite(str(tmp_path / "a.png"), IMAGE)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "sub").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"a video")
    with pytest.raises(error, match=message) as info:
        read_prompts_file(_write(tmp_path, content))
    assert "\n" not in str(info.value)
    with pytest.raises(VocabularyError, match="does not exist"):
        read_prompts_file(tmp_path / "nothing.json")
