"""The contact sheet: sample images in a grid, each fitted to its cell, with its boxes drawn."""

import numpy as np

from ovdet.io.contact_sheet import contact_sheet, pick_samples
from ovdet.io.label_formats import LabelRecord


def _rec(name, h, w, boxes):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return LabelRecord.from_detections(name, name, name, None, False, (h, w), boxes, np.full(len(boxes), 0.9),
                                       np.zeros(len(boxes), np.int64))  # fmt: skip


def test_tiles_fit_their_cells_and_show_the_boxes():
    records = [_rec("wide.jpg", 100, 400, [[100, 20, 300, 80]]), _rec("tall.jpg", 400, 100, []),
               _rec("gone.jpg", 50, 50, [[1, 1, 40, 40]])]  # fmt: skip
    images = {"wide.jpg": np.full((100, 400, 3), 200, np.uint8), "tall.jpg": np.full((400, 100, 3), 200, np.uint8)}
    sheet = contact_sheet(records, ["thing"], lambda r: images.get(r.name), count=16, tile=64, columns=4)
    assert sheet.shape == (64, 128, 3)  # "gone.jpg" could not be read: two cells
    wide, tall = sheet[:, :64], sheet[:, 64:]
    assert (wide[:24] == 114).all() and (wide[40:] == 114).all()  # 400x100 scaled to 64x16, centred on grey
    assert (tall[:, :24] == 114).all() and (tall[:, 40:] == 114).all()
    assert (wide[24:40] != 200).any() and (tall[:, 24:40] == 200).all()  # a box drawn on the first only
    assert contact_sheet(records, ["thing"], lambda r: None) is None


def test_samples_prefer_images_with_boxes_and_spread_evenly():
    records = [_rec(f"{i:02d}.jpg", 10, 10, [[1, 1, 5, 5]] if i % 2 else []) for i in range(20)]
    picked = [r.name for r in pick_samples(records, 5)]
    assert picked == ["01.jpg", "05.jpg", "09.jpg", "13.jpg", "17.jpg"]
    assert len(pick_samples(records[:3], 16)) == 3
