import numpy as np
import torch

from ovdet.model.head import HeadOutput
from ovdet.model.postprocess import decode_boxes, results_from_outputs
from ovdet.runtime.letterbox import Letterbox
from ovdet.runtime.postprocess import results_from_outputs as numpy_results


def test_decode_matches_ultralytics_dfl():
    from ultralytics.nn.modules import DFL
    from ultralytics.utils.tal import dist2bbox, make_anchors

    feats = [torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4)]
    anchors, strides = make_anchors(feats, torch.tensor([8.0, 16.0]), 0.5)
    logits = torch.randn(2, 64, len(anchors))
    ours = decode_boxes(HeadOutput(logits, torch.zeros(2, 1, len(anchors)), anchors, strides))
    theirs = dist2bbox(DFL(16)(logits), anchors.T.unsqueeze(0), xywh=False, dim=1) * strides.T
    torch.testing.assert_close(ours, theirs.transpose(1, 2))


def test_tensors_go_through_the_shared_numpy_selection():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(2, 300, 2, generator=g) * 50], 2)
    scores = torch.rand(2, 4, 300, generator=g) ** 2
    infos = [Letterbox((200, 300), (224, 320), (1.0, 1.0), (10, 12))] * 2
    select = {"conf": 0.3, "iou": 0.6, "max_det": 50}
    ours = results_from_outputs(boxes, scores, infos, ("a", "b", "c", "d"), **select)
    reference = numpy_results(boxes.numpy(), scores.numpy(), infos, ("a", "b", "c", "d"), **select)
    for a, b in zip(ours, reference):
        assert len(a) > 10
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
