"""ONNX export and ``OnnxDetector``: same outputs and predictions as PyTorch, metadata carried, clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError, VocabularyError
from ovdet.model.postprocess import decode_boxes
from tests.conftest import BOX_TOL_PX, SCORE_TOL, TINY_CLIP, make_scorable, photo_batch, same_detections

IMGSZ = 256


def fused_twin(model: ovdet.OVDetector) -> ovdet.OVDetector:
    twin = ovdet.build(model.config, None)
    twin.load_state_dict(model.state_dict())
    twin.set_vocabulary(model.vocabulary)
    return twin.fuse()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A YOLO-World-layout model with 20 classes and its ONNX export."""
    torch.manual_seed(0)
    model = make_scorable(ovdet.build("yoloworldv2-n", None))
    model.set_classes([f"class {i}" for i in range(20)], embeddings=np.random.default_rng(0).normal(size=(20, 512)))
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert model.export("onnx", path, imgsz=IMGSZ) == str(path)
    return model.eval(), path


def test_export_leaves_the_model_unfused_and_trainable(exported):
    model, _ = exported
    assert not model.is_fused
    model.train()
    model.eval()


def test_a_fused_model_exports_too_and_stays_as_it_was(exported, tmp_path, bus_image):
    model, _ = exported
    fused = fused_twin(model)
    fused.export("onnx", tmp_path / "fused.onnx", imgsz=128)
    assert fused.is_fused and fused.names == model.names
    (a,) = fused.predict(bus_image, imgsz=128, conf=0.8)
    (b,) = ovdet.load_onnx(tmp_path / "fused.onnx").predict(bus_image, conf=0.8)
    rows = [np.c_[r.class_ids, r.scores, r.boxes] for r in (a, b)]
    same_detections(*rows, box_tol=BOX_TOL_PX * 1080 / 128, score_tol=SCORE_TOL)  # original px: 1080 / 128 larger


def test_onnx_outputs_equal_pytorch_for_any_batch_and_size(exported):
    import onnxruntime as ort

    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    for images in (photo_batch(IMGSZ), photo_batch(IMGSZ)[:1, :, :192]):  # dynamic batch and height
        boxes, scores = session.run(None, {"images": images.numpy()})
        with torch.inference_mode():
            out = model(images)
        np.testing.assert_allclose(scores, out.class_logits.sigmoid().numpy(), atol=1e-4, rtol=0)
        # ONNX Runtime sums float32 in another order: see BOX_TOL_PX in tests/conftest.py
        np.testing.assert_allclose(boxes, decode_boxes(out).numpy(), atol=BOX_TOL_PX, rtol=0)


def test_onnx_predictions_equal_pytorch(exported, bus_image):
    model, path = exported
    onnx_model = ovdet.load_onnx(path, threads=2)
    assert onnx_model.names == model.names and onnx_model.stride == 32 and onnx_model.default_imgsz == (IMGSZ, IMGSZ)
    assert onnx_model.info["architecture"] == "yoloworldv2-n"
    fused = fused_twin(model)  # what the export holds: ~1e-5 from the unfused model, which could flip a near-tie
    # this random model scores the full-size photo far higher: a conf per image gives ~40-100 detections each
    for image, conf in ((bus_image, 0.95), (bus_image[::2, ::3].copy(), 0.9)):
        (a,) = fused.predict(image, conf=conf, imgsz=IMGSZ)
        (b,) = onnx_model.predict(image, conf=conf)  # its default size: the export's
        assert b.names == a.names and b.orig_shape == a.orig_shape and 10 < len(a) < 300
        rows = [np.c_[r.class_ids, r.scores, r.boxes] for r in (a, b)]
        same_detections(*rows, box_tol=BOX_TOL_PX * image.shape[0] / IMGSZ, score_tol=SCORE_TOL)  # original px


def test_export_and_load_refusals(exported, tmp_path):
    model, path = exported
    with pytest.raises(ValueError, match="supported: 'onnx'"):
        model.export("tflite", tmp_path / "m.tflite")
    with pytest.raises(VocabularyError, match="set_classes"):
        ovdet.build("yoloworldv2-n", None).export("onnx", tmp_path / "m.onnx")
    with pytest.raises(CheckpointError, match="ovdet.load_onnx"):
        ovdet.load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        ovdet.load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load"):
        ovdet.load_onnx(tmp_path / "junk.onnx")


# ---------------------------------------------------------------------------------------------- runtime vocabulary
# The families whose runtime-vocabulary export is proven equal to PyTorch: built here with random weights (None), or
# converted from an ultralytics checkpoint made offline from the yaml ultralytics ships (tests/io/conftest.py: random
# weights, scores calibrated on the photos, YOLOE's text projection randomised, YOLO26's one-to-one branch its own).
RUNTIME_ARCHS = {
    "ovdet-n": None, "yoloworldv2-s": None, "yoloworld-n": "yolov8n-world.yaml", "yoloe-v8n": "yoloe-v8n.yaml",
    "yoloe-11n": "yoloe-11n.yaml", "yoloe-26n-seg": "yoloe-26n-seg.yaml",
}  # fmt: skip
RUNTIME_IMGSZ = 192
# The K in {1, 5, 80, 1203} and B in {1, 3}, each value at least once per family: nothing in the graph ties
# the class axis to the batch axis, so these pairs prove what the full product would at half the cost. B = 3 also
# runs at another height (dynamic H).
RUNTIME_CASES = [(1, 3), (5, 1), (80, 3), (1203, 1)]
# ONNX Runtime sums float32 in another order than PyTorch, and so does PyTorch's own fused model (Conv+BatchNorm and
# the text folded into convolutions, what predict runs): their deviations from the unfused model are of one kind and,
# per model and input, of one size. Most models keep them within the fixed bounds (BOX_TOL_PX, SCORE_TOL); where a
# model amplifies rounding beyond them (YOLOE's logit scale, v1's ImagePoolingAttn softmax over image features, and
# these random models' BatchNorms with near-zero variances, whose folded gains are large), ONNX Runtime is held to a
# multiple of PyTorch's fused-vs-unfused spread, measured on the same inputs (YOLOE-11/26 here: scores ~1e-3 apart).
# Where it exceeds the fixed bounds, ONNX Runtime's deviation was 0.6-1.4x that spread; 4 leaves room for other CPUs.
SPREAD_FACTOR = 4


class RuntimeExport(NamedTuple):
    model: ovdet.OVDetector  # unfused, eval mode: the reference
    fused: ovdet.OVDetector  # a fused twin: PyTorch's own float32 reordering of the same model
    path: Path  # its runtime-vocabulary export
    session: Any  # an onnxruntime.InferenceSession of it
    own: torch.Tensor  # (K0, D) the model's own class embeddings, those it scores highest on the photos first


@pytest.fixture(scope="module", params=list(RUNTIME_ARCHS))
def runtime_export(request, tmp_path_factory, ultralytics_checkpoint) -> RuntimeExport:
    import onnxruntime as ort

    name, cfg = request.param, RUNTIME_ARCHS[request.param]
    torch.manual_seed(0)
    if cfg is None:
        model = make_scorable(ovdet.build(name, None if name.startswith("yolo") else TINY_CLIP))
        model.set_classes(["a", "b", "c"], embeddings=np.random.default_rng(0).normal(size=(3, model.embed_dim)))
    else:
        model = ovdet.from_ultralytics(ultralytics_checkpoint(cfg), trust_pickle=True)
    assert model.config.name == name
    model.eval()
    with torch.inference_mode():
        best = model(photo_batch(RUNTIME_IMGSZ)).class_logits.amax((0, 2)).argsort(descending=True)
    path = tmp_path_factory.mktemp("onnx-runtime") / "model.onnx"
    model.export("onnx", path, vocabulary="runtime", imgsz=RUNTIME_IMGSZ)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return RuntimeExport(model, fused_twin(model), path, session, model.class_embeddings[best].clone())


def vocabulary_of(own: torch.Tensor, k: int) -> torch.Tensor:
    """``(K, D)`` unit-length class embeddings: the model's own classes first (so that scores are not all near 0,
    where a comparison proves little), then random ones."""
    n = min(k, len(own))
    extra = torch.randn(k - n, own.shape[1], generator=torch.Generator().manual_seed(k))
    return torch.cat([own[:n], torch.nn.functional.normalize(extra, dim=-1)])


def exported_outputs(out) -> list[np.ndarray]:
    """What the export computes from raw outputs: boxes, scores and, with masks, mask coefficients and prototypes."""
    tensors = [decode_boxes(out), out.class_logits.sigmoid()]
    if out.protos is not None:
        tensors += [out.mask_coefficients, out.protos]
    return [t.numpy() for t in tensors]


@pytest.mark.parametrize(("k", "b"), RUNTIME_CASES)
def test_runtime_vocabulary_outputs_equal_pytorch_for_any_class_count(runtime_export, k, b):
    model, fused, _, session, own = runtime_export
    masks = bool(model.config.head.masks)
    outputs = ["boxes", "scores", *(["mask_coefficients", "protos"] if masks else [])]
    # a family that projects text (YOLOE) also takes which rows are projected already (visual prompts); text: none
    projects = getattr(model.head, "text_projection", None) is not None
    assert [i.name for i in session.get_inputs()] == ["images", "class_embeddings", *(["class_projected"] * projects)]
    assert [o.name for o in session.get_outputs()] == outputs
    text = vocabulary_of(own, k)
    photos = photo_batch(RUNTIME_IMGSZ)
    images = photos[:1] if b == 1 else torch.cat([photos, photos.flip(3)])[:3, :, :160]
    feeds = {"images": images.numpy(), "class_embeddings": text.numpy()}
    if projects:
        feeds["class_projected"] = np.zeros(k, bool)
    found = session.run(None, feeds)
    fused.set_classes([f"class {i}" for i in range(k)], embeddings=text)
    with torch.inference_mode():
        reference, refolded = exported_outputs(model(images, text)), exported_outputs(fused(images))
    assert found[1].shape == (b, k, reference[1].shape[2])
    assert 0.01 < found[1].max() and found[1].min() < 0.99  # varied scores, not a saturated model
    # fixed bounds: tests/conftest.py; mask coefficients and prototypes are conv outputs: ~1e-6 of their magnitude
    floors = [BOX_TOL_PX, SCORE_TOL] + [1e-5 * np.abs(r).max() for r in reference[2:]]
    for name, ours, theirs, folded, floor in zip(outputs, found, reference, refolded, floors):
        tol = max(floor, SPREAD_FACTOR * np.abs(folded - theirs).max())
        np.testing.assert_allclose(ours, theirs, atol=tol, rtol=0, err_msg=f"{name}, K={k}, B={b}")


def clear_conf(model, image, *, gap: float) -> float:
    """A threshold halfway between two scores more than ``gap`` apart, leaving 4-30 detections: a threshold near a
    score would make the comparison a coin toss. (Greedy NMS keeps a box regardless of lower-scored ones, so the
    detections above it are those of a low threshold.)"""
    scores = model.predict(image, imgsz=RUNTIME_IMGSZ, conf=0.05)[0].scores
    for n in range(min(30, len(scores) - 1), 3, -1):
        if scores[n - 1] - scores[n] > gap:
            return float(scores[n - 1] + scores[n]) / 2
    raise AssertionError(f"no clear threshold among {scores[:31]}")


def test_runtime_vocabulary_predictions_equal_pytorch(runtime_export, bus_image):
    from ovdet.model.preprocess import preprocess

    model, fused, path, _, own = runtime_export
    onnx_model = ovdet.load_onnx(path, threads=2)
    assert onnx_model.vocabulary_mode == "runtime" and onnx_model.names == model.names  # the exported classes
    assert onnx_model.info["end2end"] == model.end2end  # YOLO26: its one-to-one branch, no NMS
    batch, (letterbox,) = preprocess([bus_image], (RUNTIME_IMGSZ, RUNTIME_IMGSZ))  # the input predict makes
    with torch.inference_mode():  # these random models score a photo's classes from ~0 to all-saturated: take those
        best = model(batch, own).class_logits.amax((0, 2))  # whose best score on it is nearest 0.99 (logit 4.6)
    names, emb = [f"class {i}" for i in range(6)], vocabulary_of(own[(best - 4.6).abs().argsort()], 6)
    onnx_model.set_classes(names, embeddings=emb)
    reference = fused.set_classes(names, embeddings=emb)  # what PyTorch's predict runs (its fast path is a fused copy)
    # each deviates from the unfused model by up to its spread (see SPREAD_FACTOR): bounded by their sum
    with torch.inference_mode():
        pairs = zip(exported_outputs(model(batch, emb)), exported_outputs(fused(batch)))
        spread = [np.abs(a - b).max() for a, b in pairs]
    score_tol = max(SCORE_TOL, (1 + SPREAD_FACTOR) * spread[1])
    box_tol = max(BOX_TOL_PX, (1 + SPREAD_FACTOR) * spread[0]) / min(letterbox.gain)  # in the photo's pixels
    conf = clear_conf(reference, bus_image, gap=2 * score_tol)
    (a,) = reference.predict(bus_image, conf=conf, imgsz=RUNTIME_IMGSZ)
    (b,) = onnx_model.predict(bus_image, conf=conf)  # its default size: the export's
    assert b.names == tuple(names) and b.orig_shape == a.orig_shape and len(a) > 3
    same_detections(np.c_[a.class_ids, a.scores, a.boxes], np.c_[b.class_ids, b.scores, b.boxes], box_tol=box_tol,
                    score_tol=score_tol)  # fmt: skip
    assert (a.masks is None) == (b.masks is None) == (not model.config.head.masks)
    if a.masks is not None:
        import cv2

        # the same masks, up to pixels near an edge: a mask is its logit > 0, interpolated from prototypes at a
        # quarter of the input size, so rounding flips pixels only where that logit crosses 0, within a cell of the edge
        cell = int(np.ceil(4 / min(letterbox.gain)))  # one prototype pixel, in the photo's pixels
        kernel = np.ones((2 * cell + 1, 2 * cell + 1), np.uint8)
        for i in range(len(a)):
            j = (np.abs(b.boxes - a.boxes[i]).max(1) + 1e9 * (b.class_ids != a.class_ids[i])).argmin()
            mask = a.masks[i].astype(np.uint8)
            edge = cv2.dilate(mask, kernel) != cv2.erode(mask, kernel)
            differ = a.masks[i] != b.masks[j]
            assert mask.any() and not (differ & ~edge).any()


def test_prompt_free_models_refuse_a_runtime_vocabulary_and_name_the_folded_export(tmp_path):
    import dataclasses

    from ovdet.model.config import load_config

    config = load_config("yoloe-11n-seg")
    config = dataclasses.replace(config, name="yoloe-11n-seg-pf", head=dataclasses.replace(config.head, prompt_free=4))
    model = ovdet.build(config, None).eval()
    model.set_builtin_names(["cat", "dog", "bus", "person"])
    with pytest.raises(VocabularyError, match=r"prompt-free.*no text input.*model.export\('onnx', path\)"):
        model.export("onnx", tmp_path / "pf.onnx", vocabulary="runtime")
    assert not (tmp_path / "pf.onnx").exists()
    model.export("onnx", tmp_path / "pf.onnx", imgsz=64)  # the fix the message names works
    assert ovdet.load_onnx(tmp_path / "pf.onnx").names == ["cat", "dog", "bus", "person"]


def test_folded_export_refuses_other_classes_and_names_the_fix(exported):
    model, path = exported
    onnx_model = ovdet.load_onnx(path)
    assert onnx_model.set_classes(model.names) is onnx_model  # its own classes: fine
    with pytest.raises(VocabularyError, match="vocabulary='runtime'"):
        onnx_model.set_classes(["person", "bus"])


def test_export_never_replaces_what_ovdet_did_not_write(exported, tmp_path):
    from ovdet.errors import OutputError

    model, _ = exported
    mine = tmp_path / "notes.onnx"
    mine.write_bytes(b"my own file")
    with pytest.raises(OutputError, match="not written by ovdet"):
        model.export("onnx", mine)
    with pytest.raises(OutputError, match="is a folder"):
        model.export("onnx", tmp_path)
    assert mine.read_bytes() == b"my own file"
    model.export("onnx", tmp_path / "m.onnx", imgsz=64)
    model.export("onnx", tmp_path / "m.onnx", imgsz=64, vocabulary="runtime")  # an earlier export is replaced
    assert ovdet.load_onnx(tmp_path / "m.onnx").vocabulary_mode == "runtime"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "notes.onnx"]  # no temporary file left behind


def test_an_export_never_replaces_an_export_of_another_kind(exported, tiny_encoder, tmp_path):
    """A text encoder written over the detector it serves (or the reverse) would lose finished work: refused."""
    from ovdet.errors import OutputError

    model, _ = exported
    detector, encoder = tmp_path / "model.onnx", tmp_path / "text_encoder.onnx"
    model.export("onnx", detector, imgsz=64)
    ovdet.export_text_encoder(tiny_encoder, encoder)
    before = detector.read_bytes(), encoder.read_bytes()
    with pytest.raises(OutputError, match="is an ovdet detector export; writing a text encoder there would lose it"):
        ovdet.export_text_encoder(tiny_encoder, detector)
    with pytest.raises(OutputError, match="is an ovdet text encoder export; writing a detector there would lose it"):
        model.export("onnx", encoder, imgsz=64)
    assert (detector.read_bytes(), encoder.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "text_encoder.onnx", "text_encoder.tokenizer.json"]
