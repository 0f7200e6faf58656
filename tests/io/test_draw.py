"""Labels show every character, whatever OpenCV version draws the boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ovdet.io.draw import _font_for, _render, draw_detections, font_chain
from ovdet.results import Result

LABELS = ["红色圆圈", "赤い円", "빨간 원", "café", "звезда", "κύκλος", "red circle"]


def test_every_character_of_common_scripts_has_a_font():
    assert font_chain(), "no label font found"
    missing = [c for label in LABELS for c in label if not c.isspace() and _font_for(c) is None]
    assert not missing


def test_labels_are_drawn_by_pillow_not_opencv_so_no_question_marks(monkeypatch):
    """OpenCV 4.x's putText draws non-ASCII as '????' (OpenCV 5 draws it): labels never go through putText."""

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.putText was called")

    monkeypatch.setattr(cv2, "putText", refuse)
    image = np.full((200, 300, 3), 40, np.uint8)
    result = Result(np.array([[20, 60, 150, 180]]), np.array([0.88]), np.array([0]), ("红色圆圈",), (200, 300))
    drawn = draw_detections(image, result)
    assert (drawn != image).any()
    glyphs = _render("红色圆圈", 24)
    # each CJK character is its own glyph (four different shapes, where '????' would be four equal ones), inked
    width = glyphs.shape[1] // 4
    cells = [glyphs[:, i * width : (i + 1) * width] for i in range(4)]
    assert all(cell.sum() > 255 * 20 for cell in cells)
    assert len({cell.tobytes() for cell in cells}) == 4


@pytest.mark.parametrize("size", [(64, 48), (256, 256), (2160, 3840)])
def test_labels_stay_inside_images_of_any_size(size):
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    boxes = np.array([[0, 0, w / 3, h / 3], [w - 5, h - 5, w, h], [w / 2, 1, w - 1, h / 2]], np.float32)
    result = Result(boxes, np.array([0.9, 0.5, 0.3]), np.array([0, 1, 0]), ("a very long class name", "b"), size)
    drawn = draw_detections(image, result)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8 and (drawn != 0).any()
