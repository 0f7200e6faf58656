import torch

from ovdet.model.head import HeadOutput
from ovdet.model.postprocess import decode_boxes, select_detections


def test_decode_matches_ultralytics_dfl():
    from ultralytics.nn.modules import DFL
    from ultralytics.utils.tal import dist2bbox, make_anchors

    feats = [torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4)]
    anchors, strides = make_anchors(feats, torch.tensor([8.0, 16.0]), 0.5)
    logits = torch.randn(2, 64, len(anchors))
    ours = decode_boxes(HeadOutput(logits, torch.zeros(2, 1, len(anchors)), anchors, strides))
    theirs = dist2bbox(DFL(16)(logits), anchors.T.unsqueeze(0), xywh=False, dim=1) * strides.T
    torch.testing.assert_close(ours, theirs.transpose(1, 2))


def test_selection_matches_ultralytics_nms():
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import xyxy2xywh

    g = torch.Generator().manual_seed(0)
    a, k = 500, 6
    xy = torch.rand(a, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + 20 + torch.rand(a, 2, generator=g) * 80], 1)
    scores = torch.rand(k, a, generator=g) ** 3
    pred = torch.cat([xyxy2xywh(boxes).T, scores], 0)[None]  # ultralytics' (1, 4 + K, A)
    for agnostic in (False, True):
        (ref,) = non_max_suppression(pred.clone(), 0.25, 0.6, agnostic=agnostic, max_det=50)
        b, s, c, _ = select_detections(boxes, scores, conf=0.25, iou=0.6, max_det=50, agnostic=agnostic)
        # ultralytics' boxes went xyxy -> xywh -> xyxy: a few float32 roundings of the box's centre and size, each
        # up to an ulp of the largest coordinate (~400 px); 8 such ulps bound them
        ulps = 8 * torch.finfo(torch.float32).eps * float(boxes.abs().max())
        torch.testing.assert_close(b, ref[:, :4], atol=ulps, rtol=0)
        torch.testing.assert_close(s, ref[:, 4])
        torch.testing.assert_close(c.float(), ref[:, 5])


def test_multi_label_keeps_several_classes_per_box():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([[0.9], [0.8], [0.1]])
    _, s, c, _ = select_detections(boxes, scores, conf=0.5, iou=0.5, max_det=10, multi_label=True)
    assert c.tolist() == [0, 1] and s.tolist() == [0.8999999761581421, 0.800000011920929]
    _, _, c, _ = select_detections(boxes, scores, conf=0.5, iou=0.5, max_det=10)
    assert c.tolist() == [0]
