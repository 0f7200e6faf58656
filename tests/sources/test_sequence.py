import logging

import cv2
import numpy as np

from ovdet.sources import ImageSequenceSource, open_source
from tests.media import shapes_frame


def test_an_image_folder_is_read_in_name_order_and_a_bad_image_is_skipped(tmp_path, caplog):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), shapes_frame(i))
    (tmp_path / "frame_003.png").write_bytes(b"not a png")
    cv2.imwrite(str(tmp_path / "frame_004.png"), shapes_frame(4))
    with caplog.at_level(logging.WARNING, logger="ovdet"):
        source = open_source(tmp_path)
        frames = list(source)
    assert isinstance(source, ImageSequenceSource) and source.frame_count == 5
    assert [f.index for f in frames] == [0, 1, 2, 4]
    assert [f.path for f in frames] == [str(tmp_path / f"frame_{i:03d}.png") for i in (0, 1, 2, 4)]
    assert all(f.timestamp is None for f in frames) and np.array_equal(frames[1].image, shapes_frame(1))
    assert "skipping frame 3" in caplog.text and "frame_003.png" in caplog.text


def test_a_glob_with_vid_stride(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), shapes_frame(i))
    frames = list(open_source(str(tmp_path / "*.jpg"), vid_stride=2))
    assert [f.index for f in frames] == [0, 2, 4] and frames[1].path.endswith("2.jpg")
