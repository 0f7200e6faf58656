"""TensorRT: a runtime-vocabulary export built with an optimisation profile for K (1 / 80 / 1,203) predicts as ONNX
Runtime's CPU provider does. Needs a GPU and ONNX Runtime's TensorRT provider; skipped elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ovdet
from tests.conftest import make_scorable, photo_batch

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(
    "TensorrtExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
    reason="needs a GPU and onnxruntime-gpu with TensorRT",
)


def tensorrt_profile(embed_dim: int, imgsz: int = 640, max_batch: int = 8) -> dict[str, str]:
    """The optimisation profile README documents: K from 1 to 1,203 (80 optimal), sizes up to 2 x imgsz."""
    return {
        "trt_profile_min_shapes": f"images:1x3x32x32,class_embeddings:1x{embed_dim}",
        "trt_profile_opt_shapes": f"images:1x3x{imgsz}x{imgsz},class_embeddings:80x{embed_dim}",
        "trt_profile_max_shapes": f"images:{max_batch}x3x{2 * imgsz}x{2 * imgsz},class_embeddings:1203x{embed_dim}",
    }


def test_tensorrt_profile_covers_1_to_1203_classes(tmp_path):
    torch.manual_seed(0)
    model = make_scorable(ovdet.build("yoloworldv2-n", None)).eval()
    path = model.export("onnx", tmp_path / "model.onnx", vocabulary="runtime", imgsz=320)
    options = {**tensorrt_profile(512, 320), "trt_engine_cache_enable": False}
    trt = ort.InferenceSession(path, providers=[("TensorrtExecutionProvider", options), "CPUExecutionProvider"])
    cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    images = photo_batch(320).numpy()
    for k in (1, 80, 1203):
        text = torch.nn.functional.normalize(torch.randn(k, 512), dim=-1).numpy()
        feeds = {"images": images, "class_embeddings": text}
        (_, ours), (_, reference) = trt.run(None, feeds), cpu.run(None, feeds)
        np.testing.assert_allclose(ours, reference, atol=1e-3)  # TF32/FP32 GPU kernels against the CPU's
