"""The deployment path runs where torch cannot be imported: load_onnx + set_classes(names) + predict, exactly as
PyTorch predicts. Optionally (OVDET_TEST_DEPLOY_VENV=1) also in a fresh venv holding only the deployment packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import ovdet
from tests.conftest import BUS, TINY_CLIP, make_scorable, same_detections

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "torchvision", "open_clip", "ultralytics")
# what a deployment machine installs besides ovdet itself (pyproject.toml's "deploy" extra, minus the full install)
DEPLOY_PACKAGES = ["numpy", "opencv-python-headless", "onnxruntime", "tokenizers", "safetensors", "ftfy", "tqdm"]

CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked}:
                raise ImportError(f"{{name}} is blocked: the ONNX path must not import it")

    sys.meta_path.insert(0, Block())
    import ovdet

    model = ovdet.load_onnx(sys.argv[1]).set_classes(["person", "bus"])
    (result,) = model.predict(sys.argv[2], conf=float(sys.argv[3]))
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {blocked})
    print(json.dumps({{"rows": [[int(c), float(s), *map(float, b)] for c, s, b in
                                zip(result.class_ids, result.scores, result.boxes)], "leaked": leaked}}))
    """
).format(blocked=repr(set(BLOCKED)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A runtime-vocabulary detector and its text encoder in one folder, and PyTorch's detections of person/bus."""
    from ovdet.text import TextEncoder

    torch.manual_seed(0)
    model = make_scorable(ovdet.build("ovdet-n", TextEncoder(TINY_CLIP, cache=None))).eval()
    folder = tmp_path_factory.mktemp("bundle")
    model.export("onnx", folder / "model.onnx", vocabulary="runtime", imgsz=256)
    ovdet.export_text_encoder(model.text_encoder, folder / "text_encoder.onnx")
    model.set_classes(["person", "bus"])
    conf = 0.3
    (expected,) = model.predict(str(BUS), imgsz=256, conf=conf)
    assert len(expected) > 3
    return folder, conf, np.c_[expected.class_ids, expected.scores, expected.boxes]


def _run_child(python: str, bundle_folder: Path, conf: float, cache: Path, *, source_tree: bool = True) -> dict:
    env = {**os.environ, "OVDET_CACHE": str(cache), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    if source_tree:
        env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([python, "-c", CHILD, str(bundle_folder), str(BUS), str(conf)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_onnx_path_runs_without_torch_and_predicts_as_pytorch(bundle, tmp_path):
    folder, conf, expected = bundle
    out = _run_child(sys.executable, folder, conf, tmp_path / "cache")  # an empty cache: the text encoder runs
    assert out["leaked"] == []
    # boxes in original pixels (1080 / 256 larger than the network's); embeddings differ by ~1e-7 between runtimes
    same_detections(expected, np.array(out["rows"]), box_tol=0.05 * 5, score_tol=1e-4)
    assert list((tmp_path / "cache" / "text").glob("*.safetensors"))  # and the prompts are now cached


@pytest.mark.skipif(not os.environ.get("OVDET_TEST_DEPLOY_VENV"), reason="set OVDET_TEST_DEPLOY_VENV=1 (builds a venv)")
def test_minimal_deployment_install_in_a_clean_venv(bundle, tmp_path):
    """A venv without system site-packages: the deployment packages, then ovdet itself with --no-deps (README's
    two commands), and the prediction runs from that install."""
    folder, conf, expected = bundle
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", *DEPLOY_PACKAGES], check=True, timeout=900)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)], check=True, timeout=900)
    blocked = subprocess.run([python, "-c", "import torch"], capture_output=True)
    assert blocked.returncode != 0  # really no torch there
    out = _run_child(python, folder, conf, tmp_path / "cache", source_tree=False)
    assert out["leaked"] == []
    same_detections(expected, np.array(out["rows"]), box_tol=0.05 * 5, score_tol=1e-4)


def test_a_text_encoder_of_another_model_is_refused(bundle, tmp_path):
    from ovdet.errors import CheckpointError, VocabularyError
    from ovdet.text import TextEncoder

    folder, _, _ = bundle
    torch.manual_seed(5)
    other = ovdet.export_text_encoder(TextEncoder(TINY_CLIP, cache=None), tmp_path / "other.onnx")  # other weights
    with pytest.raises(CheckpointError, match="was trained with"):
        ovdet.load_onnx(folder / "model.onnx", text_encoder=other)
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    lonely = ovdet.load_onnx(tmp_path / "alone", threads=1)  # no text encoder beside it, nothing cached
    # its tower has random weights, carried in the checkpoint: no spec to fetch it by, so the model is named
    with pytest.raises(VocabularyError, match=r"export_text_encoder\(ovdet.load\(MODEL\).text_encoder, "):
        lonely.set_classes(["a never seen prompt"])


def test_sessions_sleep_instead_of_spinning(bundle):
    """Spinning ONNX Runtime workers keep their cores busy after each run, slowing whatever runs next in the process
    (they slowed ultralytics from 75 to 109 ms in the side-by-side benchmark): every session ovdet opens turns it off."""
    from ovdet.runtime.session import SPINNING_CONFIG_KEY

    folder, _, _ = bundle
    model = ovdet.load_onnx(folder, threads=1)
    for session in (model.session, model.text_encoder.session):  # the detector and the text encoder beside it
        assert session.get_session_options().get_session_config_entry(SPINNING_CONFIG_KEY) == "0"


def test_pytorch_entry_points_without_torch_say_what_to_use(monkeypatch):
    import importlib

    real = importlib.import_module

    def without_torch(name, package=None):
        if name == ".api":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_torch)
    monkeypatch.delitem(ovdet.__dict__, "load", raising=False)
    with pytest.raises(ImportError, match=r"ovdet.load needs PyTorch \(torch is not installed\).*ovdet.load_onnx"):
        ovdet.__getattr__("load")


def test_a_folder_without_model_onnx_names_the_onnx_files_it_holds(bundle, tmp_path):
    from ovdet.errors import CheckpointError

    folder, _, _ = bundle
    (tmp_path / "two").mkdir()
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / "two" / name).write_bytes((folder / "model.onnx").read_bytes())
    with pytest.raises(CheckpointError, match=r"without model.onnx .*; it holds a.onnx, b.onnx; give that file's path"):
        ovdet.load_onnx(tmp_path / "two")
    with pytest.raises(CheckpointError, match="it holds no .onnx file"):
        ovdet.load_onnx(tmp_path)
    assert ovdet.load_onnx(tmp_path / "two" / "a.onnx", threads=1).names == []
