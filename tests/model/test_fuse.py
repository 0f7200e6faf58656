"""``OVDetector.fuse()``: BatchNorm and vocabulary folding keep outputs, refold on set_classes, refuse training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import FusedModelError
from ovdet.model.postprocess import decode_boxes
from tests.conftest import BOX_TOL_PX, make_scorable, photo_batch, same_detections

BOX_TOL = BOX_TOL_PX  # float32 sums reassociated by folding; see tests/conftest.py


def twin(model: ovdet.OVDetector) -> ovdet.OVDetector:
    """An independent copy (same weights and vocabulary) to fuse."""
    copy = ovdet.build(model.config, None)
    copy.load_state_dict(model.state_dict())
    copy.set_vocabulary(model.vocabulary)
    return copy.eval()


@pytest.fixture(scope="module", params=["yoloworldv2-n", "ovdet-n"])
def unfused(request):
    """YOLO-World's layout (text-guided neck, BatchNorm scorer) and ovdet's (plain neck, L2 scorer)."""
    torch.manual_seed(0)
    model = make_scorable(ovdet.build(request.param, None if request.param.startswith("yolo") else "ovdet-test-tiny"))
    names = [f"class {i}" for i in range(20)]
    return model.set_classes(names, embeddings=np.random.default_rng(0).normal(size=(20, model.embed_dim))).eval()


def assert_same_outputs(a, b):
    torch.testing.assert_close(b.class_logits.sigmoid(), a.class_logits.sigmoid(), atol=1e-4, rtol=0)
    torch.testing.assert_close(decode_boxes(b), decode_boxes(a), atol=BOX_TOL, rtol=0)


def test_fused_outputs_equal_unfused(unfused):
    fused = twin(unfused)
    assert fused.fuse() is fused and fused.is_fused and not fused.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and hasattr(parent, "conv")
                   for parent in fused.modules() for m in parent.children())  # fmt: skip
    images = photo_batch(192)
    with torch.inference_mode():
        expected = unfused(images)
        assert_same_outputs(expected, fused(images))  # folded vocabulary
        assert_same_outputs(expected, fused(images, unfused.class_embeddings))  # any text, unfolded path


def test_set_classes_after_fuse_refolds(unfused):
    fused = twin(unfused).fuse()
    images = photo_batch(192)
    emb = np.random.default_rng(5).normal(size=(3, unfused.embed_dim))
    fused.set_classes(["x", "y", "z"], embeddings=emb)
    reference = twin(unfused).set_classes(["x", "y", "z"], embeddings=emb)
    with torch.inference_mode():
        out = fused(images)
        assert out.class_logits.shape[1] == 3
        assert_same_outputs(reference(images), out)
        fused.class_embeddings.mul_(-1)  # an in-place edit is noticed and refolded, never silently ignored
        reference.class_embeddings.mul_(-1)
        assert_same_outputs(reference(images), fused(images))


def test_fused_predictions_equal_unfused(unfused, bus_image):
    fused = twin(unfused).fuse()
    plain = twin(unfused)
    plain.fast_predict = False  # the model itself, not its folded copy
    (a,) = plain.predict(bus_image, imgsz=192, conf=0.5, max_det=1000)
    (b,) = fused.predict(bus_image, imgsz=192, conf=0.5, max_det=1000)
    # this random model keeps ~400 boxes, many at an IoU within float noise of the NMS threshold: a box or two may
    # flip either way, every other detection must be the same
    keep_a, keep_b = _matched(a, b), _matched(b, a)
    assert len(a) > 100 and keep_a.mean() >= 0.99 and keep_b.mean() >= 0.99
    rows = [np.c_[r.class_ids, r.scores, r.boxes][k] for r, k in ((a, keep_a), (b, keep_b))]
    same_detections(*rows, box_tol=BOX_TOL * 6, score_tol=1e-4)  # original pixels: 1080 / 192 larger


def _matched(a, b, box_tol=BOX_TOL * 6) -> np.ndarray:
    """For each detection of ``a``, whether ``b`` has one of the same class within ``box_tol``."""
    return np.array([
        bool(((b.class_ids == c) & (np.abs(b.boxes - box).max(1) <= box_tol)).any())
        for c, box in zip(a.class_ids, a.boxes)
    ])  # fmt: skip


def test_fused_model_refuses_training_saving_and_loading(unfused, tmp_path):
    fused = twin(unfused).fuse()
    with pytest.raises(FusedModelError, match="cannot train"):
        fused.train()
    with pytest.raises(FusedModelError, match="save the model before fusing"):
        fused.save(tmp_path / "fused")
    with pytest.raises(FusedModelError, match="load them, then fuse"):
        fused.load_state_dict(unfused.state_dict())
    assert fused.eval() is fused and not (tmp_path / "fused").exists()
    unfused.train()  # the model it was copied from is untouched
    unfused.eval()
