"""Visual prompts on models without a visual-prompt encoder: the region-embedding readout (ovdet/model/visual.py), and
classes given by example through set_classes, save/load, fuse and ONNX.

The bundled model (a synthetic world of coloured shapes) is the subject: a class given by one example box must find
that object and the same pair in another image, here the blue ring, a pair the model never saw in training.
"""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest
import torch

import ovdet
from ovdet.data.synthetic import DEFAULT_WORLD, render_scene
from ovdet.errors import SourceError, VocabularyError
from ovdet.prompts import VisualPrompt
from tests.conftest import BOX_TOL_PX, SCORE_TOL, make_scorable, same_detections

# two scenes whose objects do not overlap: the blue ring (held out of training) in both
SCENE_A = render_scene(DEFAULT_WORLD, 8, objects=[("green", "square"), ("red", "circle"), ("blue", "ring")])
SCENE_B = render_scene(DEFAULT_WORLD, 100, objects=[("yellow", "star"), ("blue", "ring"), ("purple", "cross")])
RING_A, CIRCLE_A = SCENE_A.objects[2].box, SCENE_A.objects[1].box
RING_B = SCENE_B.objects[1].box
NAMES = [DEFAULT_WORLD.category_name(pair) for pair in DEFAULT_WORLD.pairs]


@pytest.fixture(scope="module")
def synth():
    return ovdet.load()


@pytest.fixture
def model(synth):
    return copy.deepcopy(synth)


def _iou(a, b) -> float:
    from torchvision.ops import box_iou

    return float(box_iou(torch.tensor(np.array([a], np.float32)), torch.tensor(np.array([b], np.float32)))[0, 0])


def test_example_boxes_read_out_near_their_own_text(model):
    rows = model.embed_visual(SCENE_A.image, [o.box for o in SCENE_A.objects])
    assert rows.shape == (3, 64) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-6)
    text = model.set_classes(NAMES).vocabulary.embeddings
    similarity = rows @ text.T  # (3, 64)
    for obj, row in zip(SCENE_A.objects, similarity):
        own = NAMES.index(f"{obj.color} {obj.shape}")
        assert row.argmax() == own and row[own] - np.delete(row, own).max() > 0.1  # margins are 0.27-0.30 here


def test_classes_given_only_by_examples_are_found_in_another_image(model):
    model.set_classes({"thing": VisualPrompt(SCENE_A.image, [RING_A]), "other": VisualPrompt(SCENE_A.image, [CIRCLE_A])})
    assert model.names == ["thing", "other"] and not model.vocabulary.projected.any()
    a = model.predict(SCENE_A.image, conf=0.5)[0]
    assert sorted(a.labels) == ["other", "thing"]
    assert _iou(a.boxes[a.labels.index("thing")], RING_A) > 0.9 and _iou(a.boxes[a.labels.index("other")], CIRCLE_A) > 0.9
    b = model.predict(SCENE_B.image, conf=0.5)[0]  # no red circle there; a yellow star and a purple cross beside it
    assert b.labels == ["thing"] and _iou(b.boxes[0], RING_B) > 0.9


def test_a_class_is_the_mean_of_its_text_and_visual_prompts(model):
    ring_a = VisualPrompt(SCENE_A.image, [RING_A])
    model.set_classes({"ring": ["blue ring", ring_a, VisualPrompt(SCENE_B.image, [RING_B])],
                       "two": VisualPrompt(SCENE_A.image, [RING_A, CIRCLE_A])})  # fmt: skip
    text = model.text_encoder.encode(["blue ring"]).numpy()[0]
    (e_a,), (e_b,) = model.embed_visual(SCENE_A.image, [RING_A]), model.embed_visual(SCENE_B.image, [RING_B])
    both = model.embed_visual(SCENE_A.image, [RING_A, CIRCLE_A]).mean(0)  # one prompt: the mean over its boxes
    expected = np.stack([text + e_a + e_b, both / np.linalg.norm(both)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(model.vocabulary.embeddings, expected, atol=1e-5)
    assert model.prompts["ring"][0] == "blue ring" and model.prompts["ring"][1] == ring_a  # kept, without pixels
    assert model.prompts["ring"][1]._pixels is None


def test_an_explicit_imgsz_reads_a_kept_class_again(model, tmp_path):
    """A class kept from the current vocabulary was read at some size: asked for another, it is read again (the same
    classes at imgsz=320 give the same rows whether or not they were set before at the model's 256)."""
    ring = VisualPrompt(SCENE_A.image, [RING_A])
    model.set_classes({"ring": ring})
    assert model.prompts["ring"][0].imgsz == (256, 256)
    model.set_classes({"ring": ring}, imgsz=320)
    np.testing.assert_allclose(model.vocabulary.embeddings, model.embed_visual(ring.image, [RING_A], imgsz=320),
                               atol=1e-6)  # fmt: skip
    kept = model.vocabulary.embeddings
    loaded = ovdet.load(model.save(tmp_path / "m"))  # the size travels with the prompt's record
    assert loaded.prompts["ring"][0].imgsz == (320, 320)
    for imgsz in (None, 320):  # as they are, or at the size they were read at: kept (their pixels are not kept)
        loaded.set_classes({**loaded.prompts, "blue": ["blue ring"]}, imgsz=imgsz)
        np.testing.assert_array_equal(loaded.vocabulary.embeddings[0], kept[0])
    with pytest.raises(SourceError, match="made from an image in memory"):
        loaded.set_classes(loaded.prompts, imgsz=256)


def test_examples_smaller_than_one_cell_are_refused_not_read_as_background(model):
    x0, y0 = RING_A[:2]
    with pytest.raises(VocabularyError, match=r"class 'dot', visual prompt: box \[11, 57, 17, 63\] is 4\.\dx4\.\d px "
                       r"at the model's input \(256x160, .* smaller than one cell of its finest grid \(8 px\).* at "
                       r"least 10 px wide and high in this image, or read this image at a larger size \(imgsz= of "
                       r"set_classes or embed_visual; --imgsz on the command line\)"):  # fmt: skip
        model.set_classes({"dot": VisualPrompt(SCENE_A.image, [[x0, y0, x0 + 6, y0 + 6]])})  # 330 px wide → 256
    assert model.embed_visual(SCENE_A.image, [[x0, y0, x0 + 12, y0 + 12]]).shape == (1, 64)
    with pytest.raises(VocabularyError, match="smaller than one cell"):
        model.embed_visual(SCENE_A.image, [[x0, y0, x0 + 12, y0 + 12]], imgsz=128)


def test_text_guided_neck_reads_out_under_a_neutral_vocabulary(monkeypatch):
    torch.manual_seed(0)
    model = ovdet.build("yoloworldv2-n", None).eval()
    seen = []
    forward = model.neck.forward
    monkeypatch.setattr(model.neck, "forward", lambda feats, text=None: seen.append(text) or forward(feats, text))
    image, box = SCENE_A.image, [RING_A]
    model.set_classes(["a", "b"], embeddings=torch.randn(2, 512))
    first = model.embed_visual(image, box, imgsz=128)
    assert len(seen) == 1 and seen[0].shape == (1, 1, 512) and not seen[0].any()  # one all-zero text
    model.set_classes(["c"], embeddings=torch.randn(1, 512))
    np.testing.assert_array_equal(model.embed_visual(image, box, imgsz=128), first)  # whatever the classes are
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("config", ["ovdet-n", "yoloworldv2-n", "yoloe-11n"])
def test_region_embeddings_are_what_the_scorer_compares_with_text(config):
    """logit = scale × region · text + bias per level, with the readout's region embeddings (L2-normalised for an L2
    scorer, after the scorer's BatchNorm otherwise) and YOLOE's projected text."""
    from ovdet.model.visual import _region_embeddings

    torch.manual_seed(0)
    model = ovdet.build(config, "ovdet-test-tiny" if config == "ovdet-n" else None)
    model = make_scorable(model) if config == "ovdet-n" else model.eval()
    text = torch.nn.functional.normalize(torch.randn(3, model.embed_dim), dim=-1)
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = model(images, text)
        feats = model.neck(model.backbone(images), text[None])
        regions = _region_embeddings(model.head, feats)[0]  # (D, A)
        head = model.head
        scorers = head.one2many.scorers if config.startswith("yoloe") else head.scorers
        t = head.project_text(text) if config.startswith("yoloe") else text
        sizes = [f.shape[2] * f.shape[3] for f in feats]
        expected = torch.cat([s.logit_scale.exp() * t @ r + s.bias for s, r in zip(scorers, regions.split(sizes, 1))], 1)
    torch.testing.assert_close(out.class_logits[0], expected, atol=1e-4 * expected.abs().max().item(), rtol=0)


def test_visual_classes_save_load_fuse_and_export(model, tmp_path):
    cv2.imwrite(str(tmp_path / "ref.png"), SCENE_A.image)
    prompt = VisualPrompt(str(tmp_path / "ref.png"), [RING_A])
    model.set_classes({"thing": [prompt], "purple cross": ["purple cross"]})
    model.save(tmp_path / "m")
    vocabulary = json.loads((tmp_path / "m" / "config.json").read_text())["vocabulary"]
    assert vocabulary["prompts"][0] == [{"image": str(tmp_path / "ref.png"), "image_size": list(SCENE_A.image.shape[:2]),
                                         "sha1": prompt.sha1, "boxes": [list(map(float, RING_A))],
                                         "imgsz": [256, 256]}]  # fmt: skip
    assert vocabulary["projected"] == [False, False]
    loaded = ovdet.load(tmp_path / "m")
    assert loaded.prompts == model.prompts
    np.testing.assert_array_equal(loaded.vocabulary.embeddings, model.vocabulary.embeddings)
    (tmp_path / "ref.png").unlink()  # the loaded model keeps the class; its reference image is not needed again
    loaded.set_classes({**loaded.prompts, "yellow star": ["yellow star"]})
    assert loaded.names == ["thing", "purple cross", "yellow star"]
    loaded.set_classes({"blue ring": loaded.prompts["thing"]})  # renamed: the same prompts, the same row, kept
    np.testing.assert_array_equal(loaded.vocabulary.embeddings[0], model.vocabulary.embeddings[0])

    (expected,) = model.predict(SCENE_B.image, conf=0.25)
    assert sorted(expected.labels) == ["purple cross", "thing"]
    rows = lambda r: np.c_[r.class_ids, r.scores, r.boxes]  # noqa: E731
    fused = copy.deepcopy(model).fuse()
    onnx = {mode: ovdet.load_onnx(model.export("onnx", tmp_path / f"{mode}.onnx", vocabulary=mode), threads=1)
            for mode in ("runtime", "folded")}  # fmt: skip
    for other in (ovdet.load(tmp_path / "m"), fused, *onnx.values()):
        assert other.prompts == model.prompts
        same_detections(rows(expected), rows(other.predict(SCENE_B.image, conf=0.25)[0]), box_tol=BOX_TOL_PX,
                        score_tol=SCORE_TOL)  # fmt: skip
    runtime = onnx["runtime"]
    with pytest.raises(VocabularyError, match="ONNX export cannot read example boxes; set the classes in PyTorch"):
        runtime.set_classes({"new": VisualPrompt(SCENE_B.image, [RING_B])})
    runtime.set_classes({**runtime.prompts, "yellow star": ["yellow star"]})  # its own visual class is kept
    found = runtime.predict(SCENE_B.image, conf=0.25)[0]
    assert sorted(found.labels) == ["purple cross", "thing", "yellow star"]
    runtime.set_classes({"blue ring": runtime.prompts["thing"]})  # a class renamed: its examples are embedded already
    renamed = runtime.predict(SCENE_B.image, conf=0.25)[0]
    assert renamed.labels == ["blue ring"] and renamed.scores[0] == found.scores[found.labels.index("thing")]


def test_a_kept_class_keeps_its_vector_bit_for_bit(model):
    """Renaming a visual class, or adding classes beside it, keeps its row as it is: not normalised again, since a
    second normalisation can move the last bit of a unit vector on one CPU and not on another (a CI machine's did)."""
    from ovdet.text.vocabulary import Vocabulary

    model.set_classes({"thing": [VisualPrompt(SCENE_A.image, [RING_A])], "purple cross": ["purple cross"]})
    vocab = model.vocabulary
    # a row 1.5e-5 off unit length, well outside what normalisation leaves as it is (UNIT_TOL): normalising it
    # again would change it
    nudged = vocab.embeddings.copy()
    nudged[0] *= np.float32(1 + 2**-16)
    model.set_vocabulary(Vocabulary(vocab.names, vocab.prompts, nudged, projected=vocab.projected))
    model.set_classes({"blue ring": model.prompts["thing"], "yellow star": ["yellow star"]})
    np.testing.assert_array_equal(model.vocabulary.embeddings[0], nudged[0])


def test_prompt_tuned_names_keep_their_vectors_beside_visual_classes(model):
    """A name with a prompt-tuned vector (ovdet train --tune prompts) takes it in place of its text prompts whether the
    vocabulary also has classes given by example or not, and a class mixing both averages the tuned vector with the
    examples as it would the text's."""
    from ovdet.text.tuned import TunedEmbeddings

    rng = np.random.default_rng(0)
    learnt = rng.normal(size=(1, model.embed_dim)).astype(np.float32)
    model.tuned = TunedEmbeddings(("red circle",), learnt)
    vec = model.tuned.get("red circle")
    ring = VisualPrompt(SCENE_A.image, [RING_A])
    model.set_classes({"Red Circle": ["red circle"], "ring": ring, "star": ["yellow star"]})
    np.testing.assert_array_equal(model.vocabulary.embeddings[0], vec)
    text = model.text_encoder.encode(["yellow star"]).numpy()[0]
    np.testing.assert_allclose(model.vocabulary.embeddings[2], text, atol=1e-6)  # untuned names: the encoder
    model.set_classes({"red circle": ["red circle", ring]})
    (e_ring,) = model.embed_visual(SCENE_A.image, [RING_A])
    expected = (vec + e_ring) / np.linalg.norm(vec + e_ring)
    np.testing.assert_allclose(model.vocabulary.embeddings[0], expected, atol=1e-5)
    model.set_classes(["red circle", "yellow star"])  # text only: the same vector through the text path
    np.testing.assert_array_equal(model.vocabulary.embeddings[0], vec)
