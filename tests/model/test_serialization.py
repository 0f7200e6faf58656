import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import ovdet
from ovdet.errors import CheckpointError
from tests.conftest import BUS


def _predict_json(model, **kw):
    return [r.to_dict() for r in model.predict(BUS, conf=0.4, imgsz=320, **kw)]


def test_reload_predicts_the_same_without_set_classes(tiny_model, tmp_path, cache_dir):
    tiny_model.set_classes({"person": ["person", "human"], "bus": ["bus"]})
    expected = tiny_model.predict(BUS, conf=0.4, imgsz=320)[0]
    tiny_model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ovdet.load(tmp_path / "m")
    assert loaded.names == ["person", "bus"] and loaded.prompts["person"] == ["person", "human"]
    got = loaded.predict(BUS, conf=0.4, imgsz=320)[0]
    assert len(expected) > 0
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-4)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-6)
    np.testing.assert_array_equal(got.class_ids, expected.class_ids)


def test_another_process_predicts_and_encodes_exactly_as_before(tiny_model, tmp_path, cache_dir):
    """The random-weight tiny text tower travels in the checkpoint: a fresh process, which never registered the tiny
    open_clip config and has an empty cache, gets the same detections and the same embedding for a new prompt."""
    tiny_model.set_classes(["person", "bus"])
    tiny_model.save(tmp_path / "m")
    expected = {"results": _predict_json(tiny_model), "new": tiny_model.text_encoder.encode(["green hat"])[0].tolist()}
    script = textwrap.dedent(
        f"""
        import json, ovdet
        model = ovdet.load({str(tmp_path / "m")!r})
        results = [r.to_dict() for r in model.predict({str(BUS)!r}, conf=0.4, imgsz=320)]
        new = model.text_encoder.encode(["green hat"])[0].tolist()
        print(json.dumps({{"results": results, "new": new}}))
        """
    )
    # the same thread count as this process (ultralytics sets OMP_NUM_THREADS=1 on import, which a child inherits):
    # oneDNN's summation order depends on it, and near-tied scores would swap places
    env = {"OVDET_CACHE": str(tmp_path / "fresh-cache"), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**__import__("os").environ, **env})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [d["label"] for d in got["results"][0]["detections"]] == [d["label"] for d in expected["results"][0]["detections"]]
    for a, b in zip(got["results"][0]["detections"], expected["results"][0]["detections"]):
        np.testing.assert_allclose(a["box"], b["box"], atol=0.02)
        assert abs(a["score"] - b["score"]) < 1e-4
    np.testing.assert_allclose(got["new"], expected["new"], atol=1e-6)


def test_loading_never_unpickles(tiny_model, tmp_path, cache_dir, monkeypatch):
    tiny_model.set_classes(["a"])
    tiny_model.save(tmp_path / "m")

    def no_pickle(*_, **__):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_pickle)
    assert ovdet.load(tmp_path / "m").names == ["a"]


def test_failed_save_leaves_the_old_folder_intact(tiny_model, tmp_path, cache_dir, monkeypatch):
    import safetensors.torch

    tiny_model.set_classes(["old"])
    tiny_model.save(tmp_path / "m")
    tiny_model.set_classes(["new"])

    def crash(*_, **__):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        tiny_model.save(tmp_path / "m")
    assert ovdet.load(tmp_path / "m").names == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["m"]  # no temporary folder left


def test_pretrained_encoder_is_referenced_not_carried(tmp_path):
    model = ovdet.build("yoloworldv2-n")  # ViT-B-32-quickgelu:openai: re-creatable from its spec
    model.set_classes(["cat", "dog"], embeddings=torch.randn(2, 512))
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["text_encoder"]["spec"] == "ViT-B-32-quickgelu:openai" and not config["text_encoder"]["carried"]
    loaded = ovdet.load(tmp_path / "m")
    assert loaded.names == ["cat", "dog"] and loaded.text_encoder.spec == "ViT-B-32-quickgelu:openai"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "config.json").unlink(), "not a saved ovdet model"),
        (lambda d: (d / "config.json").write_text("{"), "cannot read"),
        (lambda d: (d / "config.json").write_text(json.dumps({"format_version": 99})), "upgrade ovdet"),
        (lambda d: (d / "model.safetensors").write_bytes(b"junk"), "cannot read"),
    ],
)
def test_broken_folders_are_reported(tiny_model, tmp_path, cache_dir, mutate, message):
    tiny_model.set_classes(["a"])
    tiny_model.save(tmp_path / "m")
    mutate(tmp_path / "m")
    with pytest.raises(CheckpointError, match=message):
        ovdet.load(tmp_path / "m")


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(ovdet.UnknownModelError, match="model.save"):
        ovdet.load(tmp_path / "nothing-here")


def test_half_storage_halves_the_file_and_predicts_nearly_the_same(tiny_model, tmp_path, cache_dir):
    tiny_model.set_classes(["person", "bus"])
    tiny_model.save(tmp_path / "full")
    tiny_model.save(tmp_path / "half", half=True)
    full, half = (tmp_path / "full" / "model.safetensors").stat().st_size, (tmp_path / "half" / "model.safetensors").stat().st_size
    assert half < 0.55 * full
    loaded = ovdet.load(tmp_path / "half")
    assert loaded.class_embeddings.dtype == torch.float32
    a = tiny_model.predict(BUS, conf=0.5, imgsz=320)[0]
    b = loaded.predict(BUS, conf=0.5, imgsz=320)[0]
    np.testing.assert_allclose(b.scores[:5], a.scores[:5], atol=2e-2)
