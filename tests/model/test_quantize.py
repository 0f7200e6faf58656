"""INT8 export: QDQ graphs in both vocabulary modes, calibrated on images, used like fp32 exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from tests.conftest import BUS, ZIDANE, make_scorable

IMGSZ = 160


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = make_scorable(ovdet.build("ovdet-n", "ovdet-test-tiny"))
    return m.set_classes([f"c{i}" for i in range(5)], embeddings=np.random.default_rng(0).normal(size=(5, 32))).eval()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


@pytest.mark.parametrize("vocabulary", ["folded", "runtime"])
def test_int8_export_is_qdq_and_predicts_like_fp32(model, tmp_path, vocabulary, bus_image):
    import onnx

    fp32 = ovdet.load_onnx(model.export("onnx", tmp_path / "fp32.onnx", vocabulary=vocabulary, imgsz=IMGSZ))
    path = model.export("onnx", tmp_path / "int8.onnx", vocabulary=vocabulary, imgsz=IMGSZ, int8=True,
                        calibration=[str(BUS), str(ZIDANE)])  # fmt: skip
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8 = ovdet.load_onnx(path)
    assert int8.info["int8"]["calibration_images"] == 2 and int8.vocabulary_mode == vocabulary
    a, b = fp32.predict(bus_image, conf=0.5)[0], int8.predict(bus_image, conf=0.5)[0]
    assert len(a) > 5
    # quantised activations move scores and boxes a little: most fp32 detections keep a same-class twin
    iou = _iou(a.boxes, b.boxes) * (a.class_ids[:, None] == b.class_ids[None])
    assert (iou.max(1, initial=0) > 0.7).mean() >= 0.8
    if vocabulary == "runtime":  # the class count stays dynamic
        int8.set_classes(["x"], embeddings=np.ones((1, 32)))
        assert int8.predict(bus_image, conf=0.01)[0].names == ("x",)


def test_int8_needs_calibration_images(model, tmp_path):
    with pytest.raises(ValueError, match="calibration=IMAGES"):
        model.export("onnx", tmp_path / "m.onnx", int8=True)
    with pytest.raises(ovdet.SourceError):
        model.export("onnx", tmp_path / "m.onnx", int8=True, calibration=tmp_path / "nothing")
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_calibration_image_is_skipped_and_reported(model, tmp_path, caplog):
    """One corrupt file among the calibration images costs that image, not the export; none readable is an error;
    calibration images without int8=True are a mistake said out loud, not silently ignored."""
    import shutil

    folder = tmp_path / "calib"
    folder.mkdir()
    shutil.copy(BUS, folder / "bus.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with caplog.at_level("WARNING", logger="ovdet"):
        path = model.export("onnx", tmp_path / "int8.onnx", imgsz=64, int8=True, calibration=folder)
    info = ovdet.load_onnx(path).info["int8"]
    assert (info["calibration_images"], info["calibration_skipped"]) == (1, 1)
    assert "broken.jpg" in caplog.text
    (folder / "bus.jpg").unlink()
    with pytest.raises(ovdet.SourceError, match=r"no calibration image could be read \(1 skipped"):
        model.export("onnx", tmp_path / "none.onnx", imgsz=64, int8=True, calibration=folder)
    with pytest.raises(ovdet.errors.ConfigError, match="only with int8=True"):
        model.export("onnx", tmp_path / "fp32.onnx", imgsz=64, calibration=[str(BUS)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "int8.onnx"]
