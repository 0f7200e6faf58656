import json

import numpy as np
import pytest

from ovdet import Result


def make(n=3, image=True):
    boxes = np.array([[10, 10, 50, 60], [20, 30, 90, 80], [0, 0, 5, 5]], np.float32)[:n]
    return Result(
        boxes, np.array([0.9, 0.6, 0.3])[:n], np.array([1, 0, 1])[:n], ("cat", "dog"), (100, 120),
        path="x.jpg", image=np.zeros((100, 120, 3), np.uint8) if image else None,
    )  # fmt: skip


def test_fields_are_typed_numpy():
    r = make()
    assert r.boxes.dtype == np.float32 and r.scores.dtype == np.float32 and r.class_ids.dtype == np.int64
    assert r.labels == ["dog", "cat", "dog"] and len(r) == 3


def test_masks_and_slices_give_results():
    r = make()
    high = r[r.scores > 0.5]
    assert isinstance(high, Result) and len(high) == 2 and high.labels == ["dog", "cat"]
    assert r[1:].scores.tolist() == pytest.approx([0.6, 0.3])
    assert r[0].labels == ["dog"]


def test_inconsistent_fields_are_rejected():
    with pytest.raises(ValueError, match="disagree"):
        Result(np.zeros((2, 4)), np.zeros(3), np.zeros(2), ("a",), (1, 1))
    with pytest.raises(ValueError, match="index names"):
        Result(np.zeros((1, 4)), np.zeros(1), np.array([3]), ("a",), (1, 1))


def test_to_dict_is_json_ready():
    d = json.loads(json.dumps(make().to_dict()))
    assert d["orig_shape"] == [100, 120] and d["detections"][0] == {
        "box": [10.0, 10.0, 50.0, 60.0], "score": 0.9, "class_id": 1, "label": "dog"
    }  # fmt: skip


def test_plot_draws_and_save_writes(tmp_path):
    r = make()
    canvas = r.plot()
    assert canvas.shape == (100, 120, 3) and canvas.any() and not r.image.any()
    r.save(tmp_path / "out.png")
    import cv2

    assert cv2.imread(str(tmp_path / "out.png")).shape == (100, 120, 3)
    with pytest.raises(ValueError, match="pass one"):
        make(image=False).plot()


def test_to_supervision():
    sv = pytest.importorskip("supervision")
    det = make().to_supervision()
    assert isinstance(det, sv.Detections) and len(det) == 3
    np.testing.assert_array_equal(det.class_id, [1, 0, 1])
    assert det.data["class_name"].tolist() == ["dog", "cat", "dog"]


def test_iterating_gives_each_detection_and_ends():
    r = Result(np.array([[0, 0, 2, 2], [1, 1, 3, 3]]), np.array([0.9, 0.5]), np.array([0, 1]), ("a", "b"), (10, 10))
    assert [d.labels for d in r] == [["a"], ["b"]] and r[-1].labels == ["b"]
    with pytest.raises(IndexError, match="out of range"):
        r[2]


def test_save_errors_are_output_errors(tmp_path):
    from ovdet.errors import OutputError

    r = Result(np.zeros((0, 4)), np.zeros(0), np.zeros(0), ("a",), (8, 8), image=np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "f").write_text("x")
    for path, message in ((tmp_path / "x.txt", "cannot write an image as '.txt'"), (tmp_path, "is a folder"),
                          (tmp_path / "f" / "x.jpg", "is a file, not a folder")):  # fmt: skip
        with pytest.raises(OutputError, match=message):
            r.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
