"""The torch-free selection: OpenCV NMS keeps torchvision's boxes, and the whole selection is ultralytics'."""

import numpy as np
import pytest
import torch
import torchvision

from ovdet.runtime.postprocess import nms, select_detections


def random_boxes(rng, n, classes, size=200.0):
    xy = rng.uniform(0, size, (n, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(5, size / 2, (n, 2)).astype(np.float32)], 1)
    return boxes, rng.uniform(0.01, 1, n).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize(
    "n, classes, iou", [(1, 1, 0.5), (50, 1, 0.5), (400, 3, 0.7), (3000, 80, 0.6), (5000, 1203, 0.7)]
)
def test_opencv_nms_keeps_what_torchvision_batched_nms_keeps(n, classes, iou):
    boxes, scores, cls = random_boxes(np.random.default_rng(n), n, classes)
    ours = nms(boxes, scores, cls, iou)
    theirs = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(cls), iou)
    np.testing.assert_array_equal(ours, theirs.numpy())  # same boxes, same order (no score ties here)
    assert len(ours) < n or n == 1


def test_nms_edge_cases():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).shape == (0,)
    box = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    # equal scores: input order decides; identical boxes of two classes both survive
    assert nms(box, np.array([0.5, 0.5, 0.4], np.float32), np.array([0, 1, 0]), 0.5).tolist() == [0, 1]


def test_selection_matches_ultralytics_nms():
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import xyxy2xywh

    rng = np.random.default_rng(0)
    a, k = 500, 6
    xy = rng.uniform(0, 300, (a, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + 20 + rng.uniform(0, 80, (a, 2)).astype(np.float32)], 1)
    scores = rng.uniform(0, 1, (k, a)).astype(np.float32) ** 3
    pred = torch.cat([xyxy2xywh(torch.from_numpy(boxes)).T, torch.from_numpy(scores)], 0)[None]  # (1, 4 + K, A)
    for agnostic in (False, True):
        (ref,) = non_max_suppression(pred.clone(), 0.25, 0.6, agnostic=agnostic, max_det=50)
        b, s, c, _ = select_detections(boxes, scores, conf=0.25, iou=0.6, max_det=50, agnostic=agnostic)
        assert b.dtype == s.dtype == np.float32 and c.dtype == np.int64
        # ultralytics' boxes went xyxy -> xywh -> xyxy: a few float32 roundings of the box's centre and size, each
        # up to an ulp of the largest coordinate (~400 px); 8 such ulps bound them
        ulps = 8 * np.finfo(np.float32).eps * float(np.abs(boxes).max())
        np.testing.assert_allclose(b, ref[:, :4].numpy(), atol=ulps, rtol=0)
        np.testing.assert_array_equal(s, ref[:, 4].numpy())
        np.testing.assert_array_equal(c, ref[:, 5].numpy())


def test_multi_label_keeps_several_classes_per_box():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0]], np.float32)
    scores = np.array([[0.9], [0.8], [0.1]], np.float32)
    _, s, c, _ = select_detections(boxes, scores, conf=0.5, iou=0.5, max_det=10, multi_label=True)
    assert c.tolist() == [0, 1] and s.tolist() == [np.float32(0.9), np.float32(0.8)]
    _, _, c, _ = select_detections(boxes, scores, conf=0.5, iou=0.5, max_det=10)
    assert c.tolist() == [0]
    b, s, c, a = select_detections(boxes, scores, conf=0.95, iou=0.5, max_det=10)
    assert b.shape == (0, 4) and len(s) == len(c) == len(a) == 0
