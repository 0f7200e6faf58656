"""The dataset folder: an exact, seeded, order-independent split; links, never moves of the user's images."""

import os
import re

import cv2
import numpy as np
import yaml

from ovdet.io.dataset_folder import assign_splits, group_of, likely_split, write_dataset
from ovdet.io.label_formats import LabelRecord


def test_split_is_exact_reproducible_and_order_independent():
    items = [(f"img{i}.jpg", f"img{i}.jpg") for i in range(101)]
    a = assign_splits(items, 0.8, 0)
    assert sum(s == "train" for s in a.values()) == 81  # round(0.8 * 101)
    assert assign_splits(items[::-1], 0.8, 0) == a
    b = assign_splits(items, 0.8, 1)
    assert b != a and sum(s == "train" for s in b.values()) == 81
    assert set(assign_splits(items[:2], 0.99, 0).values()) == {"train", "val"}  # both splits from two images up
    assert set(assign_splits(items, 1.0, 0).values()) == {"train"}
    # adding images moves only images near the boundary: most keep their split
    c = assign_splits(items + [(f"new{i}.jpg", f"new{i}.jpg") for i in range(10)], 0.8, 0)
    assert sum(a[n] != c[n] for n in a) <= 10
    # likely_split is the exact split for nearly every image (what is written while labelling rarely moves)
    assert sum(likely_split(n, 0.8, 0) != s for n, s in a.items()) <= 10


def test_frames_of_a_video_stay_together():
    items = [(f"clip{v}_{f:06d}.png", f"clip{v}") for v in range(20) for f in range(5)]
    s = assign_splits(items, 0.8, 0)
    straddling = [v for v in range(20) if len({s[f"clip{v}_{f:06d}.png"] for f in range(5)}) > 1]
    assert len(straddling) <= 1  # only the video at the boundary can be cut
    assert group_of("clip_1000000.png", 1000000) == group_of("clip_000000.png", 0) == "clip"  # past 6 digits too


def _rec(source, name, stored=False, frame=None):
    return LabelRecord.from_detections(source, name, source, frame, stored, (32, 48),
                                       np.array([[2, 2, 20, 20]], np.float32), np.array([0.5]), np.array([0]))


def test_files_written_while_labelling_end_as_if_written_at_the_end(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        cv2.imwrite(str(src / f"{i}.jpg"), np.full((32, 48, 3), 40 * i, np.uint8))
    out = tmp_path / "ds"
    records = [_rec(str(src / f"{i}.jpg"), f"{i}.jpg") for i in range(6)]
    # a frame stored in the wrong split while labelling: it is moved, not rewritten
    (out / "images" / "val").mkdir(parents=True)
    frame = _rec(str(src / "clip.mp4"), "clip_000000.png", stored=True, frame=0)
    cv2.imwrite(str(out / "images" / "val" / frame.name), np.zeros((32, 48, 3), np.uint8))
    summary, splits = write_dataset(out, [*records, frame], ["thing"], [["thing", "object"]], split=0.5, seed=0,
                                    formats=("coco", "yolo"))  # fmt: skip
    assert summary["images"] == 7 and summary["train"] == 4 and summary["val"] == 3
    for r in [*records, frame]:
        placed = out / "images" / splits[r.name] / r.name
        assert placed.is_file() and (out / "labels" / splits[r.name] / (r.name.rsplit(".", 1)[0] + ".txt")).is_file()
        other = out / "images" / ("val" if splits[r.name] == "train" else "train") / r.name
        assert not os.path.lexists(other)
        if not r.stored:
            assert placed.is_symlink() and os.readlink(placed) == r.source
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"train": "images/train", "val": "images/val", "nc": 1, "names": {0: "thing"},
                    "texts": {"thing": ["thing", "object"]}}  # fmt: skip
    # a second call with another split only moves files; the sources are untouched
    _, again = write_dataset(out, [*records, frame], ["thing"], [["thing"]], split=0.8, seed=3, copy_images=False)
    assert sorted(p.name for p in src.iterdir()) == [f"{i}.jpg" for i in range(6)]
    for r in [*records, frame]:
        assert (out / "images" / again[r.name] / r.name).is_file()
        assert not os.path.lexists(out / "images" / ("val" if again[r.name] == "train" else "train") / r.name)


def test_frames_move_into_a_split_folder_not_made_yet(tmp_path):
    # one video alone: every frame is stored in its likely split while labelling, and the exact split then moves the
    # last ones into a split folder nothing has created yet
    out = tmp_path / "ds"
    frames = [_rec("/v/clip.mp4", f"clip_{i:06d}.png", stored=True, frame=i) for i in range(5)]
    (out / "images" / "train").mkdir(parents=True)
    for r in frames:
        cv2.imwrite(str(out / "images" / "train" / r.name), np.zeros((32, 48, 3), np.uint8))
    summary, splits = write_dataset(out, frames, ["thing"], [["thing"]], split=0.8, seed=0)
    assert (summary["train"], summary["val"]) == (4, 1)
    assert all((out / "images" / splits[r.name] / r.name).is_file() for r in frames)


def test_a_resume_leaves_the_files_of_images_done_before_as_they_are(tmp_path):
    src, out = tmp_path / "src", tmp_path / "ds"
    src.mkdir()
    records = [_rec(str(src / f"{i}.jpg"), f"{i}.jpg") for i in range(40)]
    for r in records:
        cv2.imwrite(r.source, np.zeros((32, 48, 3), np.uint8))

    def files():  # the label files and image links of each record: (split, inode, mtime) of what is there
        found = {}
        for p in (*out.glob("labels/*/*.txt"), *out.glob("images/*/*")):
            st = p.lstat()
            found[p.parent.parent.name, p.stem] = (p.parent.name, st.st_ino, st.st_mtime_ns)
        return found

    _, first = write_dataset(out, records[:30], ["thing"], [["thing"]], split=0.8, seed=0)
    before = files()
    (out / "labels" / first["3.jpg"] / "3.txt").write_text("0 0.5 0.5 0.9 0.9\n")  # not the journal's any more
    _, second = write_dataset(out, records, ["thing"], [["thing"]], split=0.8, seed=0)  # 10 new images
    after = files()
    kept = [r.name for r in records[:30] if first[r.name] == second[r.name] and r.name != "3.jpg"]
    assert len(kept) >= 25  # only images near the split boundary move
    for name in kept:  # not rewritten: the same inode and mtime, for millions of files on every resume
        stem = name.removesuffix(".jpg")
        assert after["labels", stem] == before["labels", stem] and after["images", stem] == before["images", stem]
    for r in records:  # and every file is the record's, in its split
        stem = r.name.removesuffix(".jpg")
        assert after["labels", stem][0] == after["images", stem][0] == second[r.name]
        label = out / "labels" / second[r.name] / f"{stem}.txt"
        assert label.read_text() == "0 0.229167 0.343750 0.375000 0.562500\n"  # box 2..20 of 48x32


def test_a_failed_copy_leaves_no_partial_file(tmp_path, monkeypatch):
    """A copy that fails half-way (a full disk, Ctrl-C in a large file) leaves neither the image nor its temporary."""
    import shutil

    import pytest

    from ovdet.io.dataset_folder import _place_image

    source = tmp_path / "a.jpg"
    source.write_bytes(b"\xff\xd8 pixels")

    def half_a_copy(src, dst):
        # the shape of every ovdet temporary, .NAME.PART.ovdet.tmp, which the CLI's disk errors show as NAME
        assert re.fullmatch(r"\.a\.jpg\.\d+\.ovdet\.tmp", os.path.basename(dst)), dst
        open(dst, "wb").write(b"\xff")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", half_a_copy)
    out = tmp_path / "ds"
    with pytest.raises(OSError, match="No space"):
        _place_image(out, _rec(str(source), "a.jpg"), "train", copy=True)
    assert [p.name for p in (out / "images" / "train").iterdir()] == []
