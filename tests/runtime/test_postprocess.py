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


# ---------------------------------------------------------------- ClassMap (ovdet label's ontology)
from ovdet.runtime.postprocess import ClassMap, select_topk  # noqa: E402


def _two_synonyms_one_object():
    """Anchors 0 and 1 sit on one object (IoU ~0.8); prompt 0 ("car") likes anchor 0, prompt 1 ("automobile")
    anchor 1; anchor 2 is a separate object scored by prompt 2 ("dog")."""
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [200, 200, 260, 260]], np.float32)
    scores = np.array([[0.9, 0.2, 0.0], [0.3, 0.8, 0.0], [0.0, 0.0, 0.7]], np.float32)  # (P=3, A=3)
    return boxes, scores


def test_class_map_merges_prompts_before_nms():
    boxes, scores = _two_synonyms_one_object()
    # without merging (each prompt a class): the object gets two boxes, one per synonym
    _, _, c, _ = select_detections(boxes, scores, conf=0.25, iou=0.5, max_det=10)
    assert sorted(c.tolist()) == [0, 1, 2]
    cm = ClassMap(("car", "dog"), (2, 1), conf=(0.25, 0.25))
    np.testing.assert_array_equal(cm.merge(scores), np.stack([scores[:2].max(0), scores[2]]))
    b, s, c, a = select_detections(boxes, scores, conf=0.0, iou=0.5, max_det=10, class_map=cm)
    assert c.tolist() == [0, 1] and a.tolist() == [0, 2]  # one car (its best-scored anchor), one dog
    assert s.tolist() == [np.float32(0.9), np.float32(0.7)]
    # the same boxes as agnostic NMS over the two synonyms' rows alone
    ref = select_detections(boxes[:2], scores[:2, :2], conf=0.25, iou=0.5, max_det=10, agnostic=True)
    np.testing.assert_array_equal(b[:1], ref[0])


def test_negatives_compete_suppress_when_agnostic_and_are_never_returned():
    boxes = np.array([[0, 0, 100, 100], [4, 4, 104, 104], [300, 0, 340, 40]], np.float32)
    # prompt 0: forklift, prompt 1: negative "shelf"; anchor 0 is a shelf that looks a bit like a forklift
    scores = np.array([[0.5, 0.45, 0.6], [0.8, 0.1, 0.0]], np.float32)
    cm = ClassMap(("forklift",), (1,), num_negatives=1, conf=(0.3,))
    _, _, c, a = select_detections(boxes, scores, conf=0.0, iou=0.5, max_det=10, class_map=cm)
    assert a.tolist() == [2, 1] and c.tolist() == [0, 0]  # anchor 0 went to the shelf: not a forklift
    _, _, c, a = select_detections(boxes, scores, conf=0.0, iou=0.5, max_det=10, agnostic=True, class_map=cm)
    assert a.tolist() == [2]  # the shelf box suppressed the overlapping forklift box, then was dropped
    # negatives are dropped before max_det: the shelf (best score) does not take the only place
    _, _, _, a = select_detections(boxes, scores, conf=0.0, iou=0.5, max_det=1, agnostic=True, class_map=cm)
    assert a.tolist() == [2]


def test_per_class_thresholds():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([[0.4, 0.0], [0.0, 0.4]], np.float32)
    _, _, c, _ = select_detections(boxes, scores, conf=0, iou=0.5, max_det=10, class_map=ClassMap(("a", "b"), (1, 1), conf=(0.3, 0.5)))
    assert c.tolist() == [0]
    _, _, c, _ = select_topk(boxes, scores, conf=0, max_det=10, class_map=ClassMap(("a", "b"), (1, 1), conf=(0.5, 0.3)))
    assert c.tolist() == [1]


def test_a_score_at_the_threshold_is_dropped_by_predict_and_label_alike():
    # scores are float32, so predict's `scores > 0.3` compares with float32(0.3) (NumPy's and torch's Python scalars
    # take the array's dtype); a class map compares in float32 too, so a score exactly float32(0.3) is dropped by both
    # (float64 thresholds would keep it in `ovdet label` only) and the next float32 up is kept by both
    at = np.float32(0.3)
    scores = np.array([[at, np.nextafter(at, np.float32(1)), 0.2]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 110, 110]], np.float32)
    cm = ClassMap(("a",), (1,), conf=(0.3,))
    for select in (select_detections, select_topk):
        predicted = select(boxes, scores, conf=0.3, iou=0.5, max_det=10)[3]
        labelled = select(boxes, scores, conf=0.0, iou=0.5, max_det=10, class_map=cm)[3]
        assert predicted.tolist() == labelled.tolist() == [1]
    import torch

    assert (torch.from_numpy(scores[0]) > 0.3).tolist() == [False, True, False]  # the torch pre-filter agrees


def test_end_to_end_heads_take_the_class_map_too():
    boxes, scores = _two_synonyms_one_object()
    scores = np.concatenate([scores, [[0.95, 0.0, 0.0]]])  # a negative that wins anchor 0
    # k = the number of anchors caps the (anchor, class) pairs considered: pad with empty anchors as a real head has
    boxes, scores = np.concatenate([boxes, np.zeros((5, 4), np.float32)]), np.pad(scores, ((0, 0), (0, 5)))
    cm = ClassMap(("car", "dog"), (2, 1), num_negatives=1, conf=(0.25, 0.25))
    _, s, c, a = select_topk(boxes, scores, conf=0.0, max_det=10, class_map=cm)
    assert a.tolist() == [1, 2] and c.tolist() == [0, 1]


def test_class_map_rejects_what_does_not_fit():
    with pytest.raises(ValueError, match="prompt count"):
        ClassMap(("a",), (0,))
    with pytest.raises(ValueError, match="threshold"):
        ClassMap(("a",), (1,), conf=(1.5,))
    with pytest.raises(ValueError, match="reads 3 prompt rows"):
        ClassMap(("a", "b"), (2, 1)).merge(np.zeros((2, 4), np.float32))


def test_agnostic_nms_across_output_classes():
    # one vehicle, scored "car" by one anchor and "truck" (two prompts) by an overlapping one: roboflow/notebooks#160
    boxes = np.array([[0, 0, 100, 60], [2, 1, 101, 62]], np.float32)
    scores = np.array([[0.7, 0.1], [0.1, 0.6], [0.2, 0.65]], np.float32)  # car; truck, lorry
    cm = ClassMap(("car", "truck"), (1, 2), conf=(0.3, 0.3))
    _, _, c, _ = select_detections(boxes, scores, conf=0, iou=0.5, max_det=10, class_map=cm)
    assert c.tolist() == [0, 1]  # per-class NMS: a car box and a truck box on one object
    _, s, c, _ = select_detections(boxes, scores, conf=0, iou=0.5, max_det=10, agnostic=True, class_map=cm)
    assert c.tolist() == [0] and s.tolist() == [np.float32(0.7)]  # --agnostic: one box, the best class
