import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import ConfigError, VocabularyError
from tests.conftest import BOX_TOL_PX, SCORE_TOL


@pytest.mark.parametrize("config", ["ovdet-n", "yoloworldv2-n"])
def test_forward_shapes(config):
    model = ovdet.build(config, None if config.startswith("yolo") else "ovdet-test-tiny")
    dim = model.embed_dim
    out = model(torch.rand(2, 3, 96, 128), torch.randn(5, dim))
    anchors = 12 * 16 + 6 * 8 + 3 * 4
    assert out.box_logits.shape == (2, 64, anchors)
    assert out.class_logits.shape == (2, 5, anchors)
    assert out.anchors.shape == (anchors, 2) and out.strides.shape == (anchors, 1)
    per_image = model(torch.rand(2, 3, 96, 128), torch.randn(2, 3, dim))
    assert per_image.class_logits.shape == (2, 3, anchors)


def test_channel_widths_follow_ultralytics_scaling():
    from ultralytics.nn.tasks import DetectionModel

    for scale in "ns":
        ours = ovdet.build(f"ovdet-{scale}", "ovdet-test-tiny")
        ref = DetectionModel(f"yolov8{scale}.yaml", nc=80, verbose=False)
        ours_backbone = sum(p.numel() for p in ours.backbone.parameters())
        ref_backbone = sum(p.numel() for m in list(ref.model)[:10] for p in m.parameters())
        assert ours_backbone == ref_backbone


def test_text_dimension_follows_the_encoder(tiny_model):
    assert tiny_model.embed_dim == 32 and tiny_model.config.embed_dim == 32


def test_yolo_world_layout_refuses_another_dimension(tiny_encoder):
    with pytest.raises(ConfigError, match="512-d"):
        ovdet.build("yoloworldv2-n", tiny_encoder)


def test_vocabulary_is_registered_state(tiny_model, cache_dir):
    tiny_model.set_classes(["a", "b", "c"])
    assert tiny_model.names == ["a", "b", "c"]
    assert tiny_model.state_dict()["class_embeddings"].shape == (3, 32)
    tiny_model.set_classes(["only"])
    assert tiny_model.class_embeddings.shape == (1, 32)
    tiny_model.to(torch.float64)
    assert tiny_model.class_embeddings.dtype == torch.float64


def test_state_dict_with_another_vocabulary_size_loads(tiny_model, cache_dir):
    tiny_model.set_classes(["a", "b", "c"])
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.set_classes(["x"])
    tiny_model.load_state_dict(state)
    torch.testing.assert_close(tiny_model.class_embeddings, state["class_embeddings"])


def test_set_classes_with_embeddings_bypasses_the_encoder():
    model = ovdet.build("yoloworldv2-n", None)
    emb = np.random.default_rng(0).normal(size=(2, 512))
    assert model.set_classes(["cat", "dog"], embeddings=emb) is model
    with pytest.raises(ValueError, match=r"expected \(2, 512\)"):
        model.set_classes(["cat", "dog"], embeddings=emb[:, :100])
    with pytest.raises(VocabularyError, match="no text encoder"):
        model.set_classes(["cat"])


def test_predict_before_set_classes_says_what_to_call(tiny_model, bus_image):
    with pytest.raises(VocabularyError, match="set_classes"):
        tiny_model.predict(bus_image)


def test_predict_returns_results_in_original_pixels(tiny_model, bus_image, cache_dir):
    tiny_model.set_classes(["person", "bus"])
    (result,) = tiny_model.predict(bus_image, conf=0.5, imgsz=320, max_det=7)
    assert result.orig_shape == (1080, 810) and 0 < len(result) <= 7
    assert (result.boxes[:, :2] >= 0).all() and (result.boxes[:, 2] <= 810).all() and (result.boxes[:, 3] <= 1080).all()
    assert (np.diff(result.scores) <= 0).all() and (result.scores > 0.5).all()
    assert set(result.labels) <= {"person", "bus"}


def test_batched_prediction_equals_one_by_one(tiny_model, bus_image, cache_dir):
    tiny_model.set_classes(["person", "bus"])
    small = bus_image[::2, ::3].copy()
    together = tiny_model.predict([bus_image, small], conf=0.5, imgsz=256, batch=2)
    apart = [tiny_model.predict(im, conf=0.5, imgsz=256)[0] for im in (bus_image, small)]
    # one-by-one uses minimal padding, batched pads to the square: the same image, differently padded
    for a, b in zip(together, apart):
        assert a.orig_shape == b.orig_shape
        assert len(a) and len(b)


def test_a_result_does_not_depend_on_its_batch_neighbours():
    """Images of different shapes in one predict() call give exactly what each gives alone (mixed shapes are never
    padded to a common size), so metrics cannot depend on --batch."""
    import glob

    model = ovdet.load().set_classes(["red circle", "purple star", "blue ring", "yellow cross"])
    paths = ["assets/demo.jpg", *sorted(glob.glob("assets/examples/example_*.jpg"))]
    together = model.predict(paths, conf=0.01, batch=len(paths))
    for path, result in zip(paths, together):
        (alone,) = model.predict(path, conf=0.01)
        assert alone.class_ids.tolist() == result.class_ids.tolist() and len(alone) > 0
        # the same input pixels; only the batch dimension of the convolutions differs, which may change the summation
        # order (see BOX_TOL_PX); boxes are in original pixels, up to 480 / 256 larger than input pixels here.
        # Padding to a common size, as before, moved scores by up to 0.024.
        np.testing.assert_allclose(result.scores, alone.scores, atol=SCORE_TOL, rtol=0)
        np.testing.assert_allclose(result.boxes, alone.boxes, atol=BOX_TOL_PX * 480 / 256, rtol=0)


def test_images_are_batched_by_their_letterbox_shape():
    from ovdet.runtime.letterbox import letterbox, letterbox_shape, shape_groups

    images = [np.zeros(s, np.uint8) for s in ((480, 640, 3), (100, 100, 3), (481, 641, 3), (300, 200, 3))]
    for image in images:
        for auto in (True, False):
            assert letterbox_shape(image.shape[:2], (320, 320), auto=auto) == letterbox(image, (320, 320), auto=auto)[0].shape[:2]
    assert shape_groups(images, (320, 320)) == [[0, 2], [1], [3]]
