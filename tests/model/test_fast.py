"""The default fast path: eval-mode predict runs a folded copy that follows every change of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from tests.conftest import make_scorable

IMGSZ = 160


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = make_scorable(ovdet.build("yoloworldv2-n", None))
    return m.set_classes([f"c{i}" for i in range(8)], embeddings=np.random.default_rng(0).normal(size=(8, 512))).eval()


def reference(model: ovdet.OVDetector, image: np.ndarray):
    """What a fresh fuse() of the model's current weights and vocabulary predicts."""
    twin = ovdet.build(model.config, None)
    twin.load_state_dict(model.state_dict())
    twin.set_vocabulary(model.vocabulary)
    return twin.fuse().predict(image, imgsz=IMGSZ, conf=0.3)[0]


def same(a, b) -> bool:
    return len(a) > 0 and np.array_equal(a.class_ids, b.class_ids) and np.allclose(a.scores, b.scores, atol=1e-6) \
        and np.allclose(a.boxes, b.boxes, atol=1e-4)  # fmt: skip


def predict(model, image):
    return model.predict(image, imgsz=IMGSZ, conf=0.3)[0]


def test_predict_runs_a_folded_copy_and_leaves_the_model_as_it_is(model, bus_image, tmp_path):
    keys = list(model.state_dict())
    result = predict(model, bus_image)
    assert same(result, reference(model, bus_image))
    copy = model._inference_copy
    assert copy.nbytes > 0.8 * sum(p.numel() * 4 for p in model.parameters())  # about the weights again
    assert not model.is_fused and list(model.state_dict()) == keys
    assert not any(isinstance(m, ovdet.OVDetector) for m in model.modules() if m is not model)  # no submodule
    model.save(tmp_path / "m")  # the unfused model is saved
    assert list(ovdet.load(tmp_path / "m").state_dict()) == keys
    model.train()
    assert copy.nbytes == 0  # training frees it
    model.eval()
    plain = ovdet.load(tmp_path / "m")
    plain.fast_predict = False
    slow = predict(plain, bus_image)  # the unfused model itself: equal up to float rounding
    assert np.array_equal(slow.class_ids, result.class_ids) and np.allclose(slow.scores, result.scores, atol=1e-4)


def test_the_copy_follows_weights_vocabulary_and_dtype(model, bus_image):
    predict(model, bus_image)
    first = model._inference_copy._model
    model.set_classes(["x", "y", "z"], embeddings=np.random.default_rng(1).normal(size=(3, 512)))
    result = predict(model, bus_image)
    assert model._inference_copy._model is first and result.names == ("x", "y", "z")  # refolded, not rebuilt
    assert same(result, reference(model, bus_image))

    other = make_scorable(ovdet.build("yoloworldv2-n", None))  # load_state_dict: new weights
    other.set_vocabulary(model.vocabulary)
    model.load_state_dict(other.state_dict())
    assert same(predict(model, bus_image), reference(other, bus_image))
    assert model._inference_copy._model is not first

    with torch.no_grad():
        model.head.scorers[0].bias.add_(3.0)  # an in-place edit
    assert same(predict(model, bus_image), reference(model, bus_image))

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # a training step
    model.train()
    model(torch.rand(1, 3, 64, 64), model.class_embeddings).class_logits.sum().backward()
    optimizer.step()
    model.eval()
    assert same(predict(model, bus_image), reference(model, bus_image))

    before = model._inference_copy._model
    model._apply(lambda t: t.clone())  # what .to(device) / .half() do: new storage, same values
    assert same(predict(model, bus_image), reference(model, bus_image))
    assert model._inference_copy._model is not before


def test_fast_predict_off_runs_the_model_itself(model, bus_image):
    model.fast_predict = False
    predict(model, bus_image)
    assert model._inference_copy.nbytes == 0
    model.train()
    assert model.predict(bus_image, imgsz=IMGSZ, conf=0.3)[0] is not None  # training mode: the model itself
    assert model.training and model._inference_copy.nbytes == 0
