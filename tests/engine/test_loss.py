import torch

from ovdet.engine.loss import DetectionLoss
from ovdet.model.head import HeadOutput
from ultralytics.utils.tal import make_anchors


def _outputs(b=2, k=4, requires_grad=True):
    feats = [torch.zeros(b, 1, 8, 8), torch.zeros(b, 1, 4, 4), torch.zeros(b, 1, 2, 2)]
    anchors, strides = make_anchors(feats, torch.tensor([8.0, 16.0, 32.0]), 0.5)
    g = torch.Generator().manual_seed(0)
    boxes = torch.randn(b, 64, len(anchors), generator=g).requires_grad_(requires_grad)
    logits = torch.randn(b, k, len(anchors), generator=g).requires_grad_(requires_grad)
    return HeadOutput(boxes, logits, anchors, strides)


def test_padded_vocabulary_entries_get_no_gradient():
    out = _outputs()
    targets = torch.tensor([[0, 0, 8, 8, 40, 40], [1, 1, 20, 4, 60, 30]], dtype=torch.float32)
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    loss, items = DetectionLoss()(out, targets, mask)
    loss.backward()
    grad = out.class_logits.grad.abs().sum(2)  # (B, K)
    assert (grad[~mask] == 0).all() and (grad[mask] > 0).all()
    assert set(items) == {"box", "cls", "dfl"} and all(v >= 0 for v in items.values())


def test_images_without_objects_only_push_scores_down():
    out = _outputs()
    loss, items = DetectionLoss()(out, torch.zeros(0, 6), torch.ones(2, 4, dtype=torch.bool))
    assert items["box"] == 0 and items["dfl"] == 0 and items["cls"] > 0
    loss.backward()
    assert (out.class_logits.grad >= 0).all()  # every logit is pushed down


def test_loss_is_batch_size_scaled_like_ultralytics():
    out = _outputs(b=2, requires_grad=False)
    targets = torch.tensor([[0, 0, 8, 8, 40, 40]], dtype=torch.float32)
    loss, items = DetectionLoss()(out, targets, torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(loss, sum(items.values()) * 2)
