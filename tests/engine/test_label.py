"""``ovdet.label`` end to end with the bundled model: the dataset pycocotools, ultralytics and ``ovdet train`` read,
merged prompts, and re-running safely (refuse, resume, overwrite)."""

import json
import os
import sys

import cv2
import numpy as np
import pytest

import ovdet
from ovdet.data.datasets import load_dataset_config, load_split
from ovdet.engine.label import label
from ovdet.errors import ConfigError, OutputError, SourceError
from ovdet.io.label_formats import LabelRecord

CLASSES = "circle=red circle|blue circle|green circle|yellow circle, star=red star|blue star|yellow star, square"
NEGATIVE = "purple triangle"


@pytest.fixture(scope="module", autouse=True)
def _give_back_global_state():
    """A test module that loads models and runs commands in this process gives back what they change for the whole
    process: the global RNGs (building a model draws from torch's; `ovdet train` seeds them all) and torch's threads
    (commands set --threads, default all cores), so later tests start as they would without this module."""
    import random

    import torch

    threads, state = torch.get_num_threads(), (torch.get_rng_state(), np.random.get_state(), random.getstate())
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


def same_records(ours, theirs):
    """Two journals (lists of JSON lines) hold the same images in the same order with the same labels. Two processes
    may compute a box a float rounding apart (another oneDNN kernel, see tests/conftest.py): boxes agree within
    BOX_TOL_PX plus the journal's 0.01 px rounding, scores within SCORE_TOL plus its 1e-5 rounding."""
    from tests.conftest import BOX_TOL_PX, SCORE_TOL

    ours, theirs = [json.loads(line) for line in ours], [json.loads(line) for line in theirs]
    assert [r["key"] for r in ours] == [r["key"] for r in theirs] and len({r["key"] for r in ours}) == len(ours)
    for a, b in zip(ours, theirs):
        assert (a["name"], a["size"], a["classes"], a["stored"]) == (b["name"], b["size"], b["classes"], b["stored"])
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=BOX_TOL_PX + 0.01, rtol=0)
        np.testing.assert_allclose(a["scores"], b["scores"], atol=SCORE_TOL + 1e-5, rtol=0)


def write_scenes(folder, n, start=0):
    from ovdet.data.synthetic import DEFAULT_WORLD, render_scene

    for i in range(start, start + n):
        sub = folder / ("site_a" if i % 2 else "site_b")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"img{i // 2}.jpg"), render_scene(DEFAULT_WORLD, i).image)


@pytest.fixture(scope="module")
def model():
    return ovdet.load()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("label")
    write_scenes(root / "images", 12)
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    summary = label(root / "images", CLASSES, negative=NEGATIVE, out=root / "ds", model=model,
                    formats=["coco", "yolo", "labelstudio"], batch=4)  # fmt: skip
    records = [LabelRecord.from_json(json.loads(line)) for line in (root / "ds" / "records.jsonl").open()]
    return root / "ds", summary, records


def test_every_readable_image_is_labelled_once(labelled):
    out, summary, records = labelled
    assert summary.images == summary.labelled == len(records) == 12
    assert len(summary.skipped) == 1 and "broken.jpg" in summary.skipped[0]
    assert len({r.key for r in records}) == 12 and summary.train == 10 and summary.val == 2
    assert summary.boxes == sum(len(r.scores) for r in records) > 5
    saved = json.loads((out / "summary.json").read_text())
    assert saved["classes"] == summary.classes and saved["skipped"] == summary.skipped
    assert cv2.imread(str(out / "contact_sheet.jpg")).shape[1] == 4 * 320


def test_coco_files_load_in_pycocotools_and_ovdet(labelled):
    from pycocotools.coco import COCO

    out, summary, records = labelled
    by_name = {r.name: r for r in records}
    boxes = 0
    for split in ("train", "val"):
        coco = COCO(str(out / "annotations" / f"{split}.json"))
        for image in coco.dataset["images"]:
            r = by_name[image["file_name"]]
            assert (image["height"], image["width"]) == r.size and (out / "images" / split / r.name).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
            assert [a["score"] for a in anns] == pytest.approx(r.scores.tolist(), abs=1e-5)
            boxes += len(anns)
        data = load_split(load_dataset_config(out / "coco.yaml"), split, strict=True)
        assert data.names == ("circle", "star", "square") and len(data.records) == getattr(summary, split)
    assert boxes == summary.boxes


def test_the_dataset_is_what_ovdet_train_reads(labelled):
    out, summary, records = labelled
    config = load_dataset_config(out / "data.yaml")
    assert config.format == "yolo" and config.texts["circle"] == ("red circle", "blue circle", "green circle",
                                                                   "yellow circle")  # fmt: skip
    by_name = {r.name: r for r in records}
    for split in ("train", "val"):
        for rec in load_split(config, split, strict=True).records:  # strict: any bad box or file is an error
            r = by_name[os.path.basename(rec.path)]
            h, w = r.size
            centre, size = rec.boxes[:, :2], rec.boxes[:, 2:]
            xyxy = np.c_[centre - size / 2, centre + size / 2] * [w, h, w, h]
            np.testing.assert_allclose(xyxy, r.boxes, atol=1e-6 * max(h, w) + 1e-3)  # 6 decimals of normalised
            assert rec.labels.tolist() == r.class_ids.tolist()


def test_ultralytics_reads_the_yolo_dataset_unchanged(labelled, monkeypatch):
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    out, summary, _ = labelled
    monkeypatch.chdir(out.parent.parent)  # the yaml's own folder is the root, wherever ultralytics runs from
    data = check_det_dataset(str(out / "data.yaml"))
    assert data["nc"] == 3 and data["names"] == {0: "circle", 1: "star", 2: "square"}
    boxes = 0
    for split in ("train", "val"):
        ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False, imgsz=256)
        assert len(ds) == getattr(summary, split)
        boxes += sum(len(lb["cls"]) for lb in ds.labels)
    assert boxes == summary.boxes


def test_label_studio_file_matches_the_images(labelled):
    out, summary, records = labelled
    tasks = json.loads((out / "labelstudio" / "tasks.json").read_text())
    assert len(tasks) == summary.images
    prefix = f"/data/local-files/?d={out.name}/"
    for task, r in zip(tasks, records):
        assert task["data"]["image"].startswith(prefix)
        assert (out / task["data"]["image"].removeprefix(prefix)).is_file()
        assert len(task["predictions"][0]["result"]) == len(r.scores)
    assert 'toName="image"' in (out / "labelstudio" / "config.xml").read_text()


def test_merged_prompts_equal_agnostic_nms_over_them(model):
    from ovdet.data.synthetic import DEFAULT_WORLD, render_scene
    from ovdet.engine.ontology import make_ontology

    images = [render_scene(DEFAULT_WORLD, i).image for i in range(6)]
    prompts = ["red circle", "blue circle", "green circle", "yellow circle"]
    merged = model.set_classes(prompts).detect(images, conf=0.3, class_map=make_ontology({"circle": prompts}).class_map)
    plain = model.detect(images, conf=0.3, agnostic=True)
    assert sum(len(r) for r in merged) > 0
    for m, p in zip(merged, plain):
        assert m.names == ("circle",) and set(m.class_ids.tolist()) <= {0}
        np.testing.assert_array_equal(m.boxes, p.boxes)
        np.testing.assert_array_equal(m.scores, p.scores)
    per_prompt = model.detect(images, conf=0.3)  # without merging, synonyms can give one object several boxes
    assert sum(len(r) for r in per_prompt) >= sum(len(r) for r in merged)


def test_existing_folders_are_refused_or_resumed(tmp_path, model):
    write_scenes(tmp_path / "images", 4)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(OutputError, match="did not write.*mine.txt"):
        label(tmp_path / "images", CLASSES, out=out, model=model, overwrite=True)
    (out / "mine.txt").unlink()
    first = label(tmp_path / "images", CLASSES, out=out, model=model, samples=0)
    assert first.labelled == 4
    with pytest.raises(OutputError, match="--resume.*--overwrite"):
        label(tmp_path / "images", CLASSES, out=out, model=model)
    with pytest.raises(ConfigError, match=r"conf .*0\.5"):
        label(tmp_path / "images", CLASSES, out=out, model=model, conf=0.5, resume=True)
    write_scenes(tmp_path / "images", 2, start=4)
    (out / ".notes.tmp").write_text("the user's, named like a temporary file")
    (out / "labels" / "train" / ".img9.txt.k2x8_q0a.ovdet.tmp").write_text("0 0.5")  # a SIGKILL mid-write left it
    more = label(tmp_path / "images", CLASSES, out=out, model=model, resume=True, samples=0)
    assert (more.images, more.labelled) == (6, 2)  # only the new images were labelled
    assert (out / ".notes.tmp").is_file() and not list(out.rglob("*.ovdet.tmp"))  # only ovdet's temporaries go
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(line)["key"] for line in lines}) == 6
    (out / "notes.md").write_text("the user's, inside ovdet's folder")
    (out / "annotations" / "reviewed.json").write_text("the user's, inside a folder of ovdet's")
    (out / "labels" / "train" / "extra.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    again = label(tmp_path / "images", "star", out=out, model=model, overwrite=True, samples=0)
    assert again.labelled == 6 and (out / "notes.md").read_text().startswith("the user's")
    assert (out / "annotations" / "reviewed.json").is_file() and (out / "labels" / "train" / "extra.txt").is_file()
    lines = (out / "records.jsonl").read_text().splitlines()
    (out / "records.jsonl").write_text("\n".join([lines[0], "damaged{", *lines[1:]]) + "\n")
    with pytest.raises(OutputError, match="line 2: not a JSON record.*--overwrite this one"):
        label(tmp_path / "images", "star", out=out, model=model, resume=True)
    assert label(tmp_path / "images", "star", out=out, model=model, overwrite=True, samples=0).labelled == 6
    assert json.loads((out / "label.json").read_text())["classes"] == {"star": ["star"]}
    assert sorted(p.name for p in (tmp_path / "images").rglob("*.jpg")) == sorted(
        f"img{i}.jpg" for i in (0, 0, 1, 1, 2, 2))  # the sources are never moved or changed
    # the dataset inside a source folder is not read back as new images (its links, its files)
    inside = label(tmp_path, "star", out=out, model=model, resume=True, samples=0)
    assert (inside.images, inside.labelled) == (6, 0)
    with pytest.raises(SourceError, match="no images or videos found"):
        label(out, "star", out=out, model=model, resume=True)


def test_a_resume_takes_prompts_embedded_again_but_not_other_weights(tmp_path, model, monkeypatch):
    import copy

    import torch

    write_scenes(tmp_path / "images", 2)
    out = tmp_path / "ds"
    assert label(tmp_path / "images", "star, square", out=out, model=model, samples=0).labelled == 2
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    with pytest.raises(ConfigError, match="the model: its weights, text encoder or class prompts"):
        label(tmp_path / "images", "star, square", out=out, model=other, resume=True)
    encode = model.text_encoder.encode

    def encoded_again(texts, **kwargs):  # the cache cleared, another machine: the same prompts a few ulps apart
        e = encode(texts, **kwargs)
        return np.nextafter(e.numpy() if hasattr(e, "numpy") else np.asarray(e), np.float32(np.inf))

    monkeypatch.setattr(model.text_encoder, "encode", encoded_again)
    again = label(tmp_path / "images", "star, square", out=out, model=model, resume=True, samples=0)
    assert (again.images, again.labelled) == (2, 0)


def test_threads_apply_to_a_loaded_detector_too(tmp_path, model):
    import types

    import torch

    write_scenes(tmp_path / "images", 1)
    threads = 2 if torch.get_num_threads() == 1 else 1  # the module's fixture gives the process's threads back
    label(tmp_path / "images", "star", out=tmp_path / "ds", model=model, threads=threads, samples=0)
    assert torch.get_num_threads() == threads
    onnx = types.SimpleNamespace(path="model.onnx")  # no state_dict: as an OnnxDetector, whose session has its threads
    with pytest.raises(ConfigError, match=r"load it with ovdet.load_onnx\(path, threads=N\)"):
        label(tmp_path / "images", "star", out=tmp_path / "onnx", model=onnx, threads=threads)
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"formats": "coco,json"}, "unknown format json:"),  # the CLI's spelling, in Python: read as --format reads it
        ({"labelstudio": {"from_name": "image"}}, "tag names must differ"),
        ({"labelstudio": {"from_name": ""}}, "non-empty"),
        ({"labelstudio": {"to_name": "my image"}}, "a word"),
        ({"labelstudio": {"form_name": "x"}}, "got form_name"),
    ],
)
def test_bad_output_settings_are_errors_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        label(tmp_path / "images", "star", out=tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_an_out_that_cannot_be_written_is_one_clear_error(tmp_path, model):
    write_scenes(tmp_path / "images", 1)
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):  # it was a NotADirectoryError
        label(tmp_path / "images", "star", out=tmp_path / "notes.txt" / "ds", model=model)


def test_a_file_system_without_links_is_one_clear_error(tmp_path, model, monkeypatch):
    write_scenes(tmp_path / "images", 1)

    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")  # as on a FAT drive

    monkeypatch.setattr(os, "symlink", no_links)
    with pytest.raises(OutputError, match="does not take symbolic links.*--copy-images"):
        label(tmp_path / "images", "star", out=tmp_path / "ds", model=model)
    assert not (tmp_path / "ds").exists()  # before any work
    assert label(tmp_path / "images", "star", out=tmp_path / "ds", model=model, copy_images=True, samples=0).labelled


def test_the_ray_engine_without_ray_is_one_clear_error(tmp_path, monkeypatch):
    write_scenes(tmp_path / "images", 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ConfigError, match=r'--engine ray needs Ray Data.*pip install "ovdet\[ray\]"'):
        label(tmp_path / "images", "star", out=tmp_path / "ds", engine="ray")
    assert not (tmp_path / "ds").exists()


class _InterruptedAt:
    """The model, but Ctrl-C arrives during its ``n``-th batch."""

    def __init__(self, model, n):
        self._model, self._n = model, n

    def __getattr__(self, name):
        return getattr(self._model, name)

    def detect(self, *args, **kwargs):
        self._n -= 1
        if self._n == 0:
            raise KeyboardInterrupt
        return self._model.detect(*args, **kwargs)


def test_ctrl_c_leaves_a_valid_dataset_of_what_was_done(tmp_path, model):
    write_scenes(tmp_path / "images", 6)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        label(tmp_path / "images", CLASSES, out=out, model=_InterruptedAt(model, 3), batch=2, samples=0)
    config = load_dataset_config(out / "data.yaml")
    done = sum(len(load_split(config, s, strict=True).records) for s in ("train", "val"))
    assert done == 4 == len((out / "records.jsonl").read_text().splitlines())
    assert not list(out.rglob("*.tmp"))
    rest = label(tmp_path / "images", CLASSES, out=out, model=model, batch=2, resume=True, samples=0)
    assert (rest.images, rest.labelled) == (6, 2)
