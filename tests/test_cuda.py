"""GPU paths a CUDA user relies on: prediction, fusing, streaming and training on the GPU.

Skipped where torch sees no CUDA device (as in CI); run them on a GPU machine with ``pytest tests/test_cuda.py``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import ovdet
from ovdet.engine.settings import load_settings
from ovdet.engine.train import resume_settings, train
from tests.engine.test_train import QUIET_AUG, TINY_DETECTOR, _args, _rows, dataset, tiny_text_json  # noqa: F401
from tests.media import read_video, write_video

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo.jpg"
CLASSES = ["red circle", "purple star", "blue ring", "yellow cross"]


def _same_detections(a, b, px: float = 0.5, score: float = 2e-3) -> None:
    assert a.labels == b.labels, (a.labels, b.labels)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=px)
    np.testing.assert_allclose(a.scores, b.scores, atol=score)


def test_default_model_predicts_on_the_gpu_as_on_the_cpu(cache_dir):
    cpu = ovdet.load().set_classes(CLASSES)
    gpu = ovdet.load().to("cuda").set_classes(CLASSES)
    assert gpu.device.type == "cuda" and gpu.class_embeddings.device.type == "cuda"
    (a,), (b,) = cpu.predict(DEMO), gpu.predict(DEMO)
    assert len(a) == 4
    _same_detections(a, b)
    (c,) = ovdet.load().to("cuda").fuse().set_classes(CLASSES).predict(DEMO)  # refolded on the GPU
    _same_detections(a, c)


def test_gpu_model_streams_a_video_as_it_predicts_its_frames(tmp_path, cache_dir):
    video = write_video(tmp_path / "clip.mp4", frames=12)
    frames, _, _ = read_video(video)
    model = ovdet.load().to("cuda").set_classes(["red circle", "green square", "blue circle"])
    results = list(model.stream(str(video), conf=0.1))
    assert [r.frame_index for r in results] == list(range(12))
    expected = [model.predict(frame, conf=0.1)[0] for frame in frames]  # one at a time, as the stream runs
    assert sum(len(r) for r in expected) >= 12  # a comparison of something
    for got, want in zip(results, expected):
        _same_detections(got, want, px=1e-2, score=1e-4)


def test_classes_given_by_example_on_the_gpu_as_on_the_cpu():
    """The readout of example boxes (ovdet/model/visual.py) runs on the model's device: same rows, same detections."""
    from tests.model.test_visual import RING_A, SCENE_A, SCENE_B

    classes = {"thing": ovdet.VisualPrompt(SCENE_A.image, [RING_A]), "purple cross": ["purple cross"]}
    cpu, gpu = ovdet.load().set_classes(classes), ovdet.load().to("cuda").set_classes(classes)
    cosine = (gpu.vocabulary.embeddings * cpu.vocabulary.embeddings).sum(1)  # unit rows; cuDNN's TF32 convolutions
    assert (cosine > 0.999).all(), cosine  # round to ~5e-4 relative, so the rows agree to about that, not to 1e-7
    (a,), (b,) = cpu.predict(SCENE_B.image), gpu.predict(SCENE_B.image)
    assert sorted(a.labels) == ["purple cross", "thing"]
    _same_detections(a, b)


def test_training_on_cuda_with_amp_resumes_and_loads(dataset, tiny_text_json, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    settings = load_settings(None, _args(dataset, tiny_text_json, out, epochs=2, device="cuda", amp=True, **QUIET_AUG))
    train(settings, progress=False)
    rows = _rows(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("box", "cls", "dfl"))
    train(resume_settings(out, epochs=3), resume=True, progress=False)  # optimizer and scaler state on the GPU
    assert [int(r["epoch"]) for r in _rows(out)] == [1, 2, 3]
    model = ovdet.load(out / "best").to("cuda")
    (result,) = model.predict(np.full((64, 64, 3), 127, np.uint8), conf=0.01)
    assert result.names == tuple(model.names) and result.boxes.dtype == np.float32
