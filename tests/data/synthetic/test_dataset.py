import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO

from ovdet.data.synthetic import DEFAULT_WORLD, Scene, SceneConfig, SceneObject, World, check_no_held_out, write_dataset
from ovdet.data.synthetic.captions import mentions_pair
from ovdet.errors import DatasetError

W = DEFAULT_WORLD
TINY = SceneConfig(long_side=(96, 128))
COUNTS = {"train": 12, "val": 3, "test": 16}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    write_dataset(root, **COUNTS, seed=3, config=TINY, workers=1, progress=False)
    return root


def test_layout_and_data_yaml(dataset):
    spec = yaml.safe_load((dataset / "data.yaml").read_text())
    for split, count in COUNTS.items():
        images = dataset / spec[split]["images"]
        assert len(list(images.glob("*.jpg"))) == count
        assert (dataset / spec[split]["annotations"]).is_file()
    assert set(spec["texts"]) == {W.category_name(p) for p in W.pairs}
    assert spec["texts"]["red circle"] == ["red circle", "red disc"]
    assert World.load(dataset / "world.json") == W


def test_coco_json_loads_with_pycocotools(dataset):
    for split in COUNTS:
        coco = COCO(str(dataset / split / "annotations.json"))
        assert len(coco.getImgIds()) == COUNTS[split]
        for image in coco.loadImgs(coco.getImgIds()):
            assert image["caption"] and (dataset / split / "images" / image["file_name"]).is_file()
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                x, y, w, h = ann["bbox"]
                assert 0 <= x and 0 <= y and w > 0 and h > 0
                assert x + w <= image["width"] and y + h <= image["height"]
                assert ann["iscrowd"] == 0 and 0 < ann["area"] <= w * h
                (start, end), = ann["tokens_positive"]
                color, shape = coco.cats[ann["category_id"]]["color"], coco.cats[ann["category_id"]]["shape"]
                assert mentions_pair(image["caption"][start:end], W, (color, shape))


def test_held_out_pairs_never_in_train_or_val(dataset):
    held_names = {W.category_name(p) for p in W.held_out_pairs}
    for split in ("train", "val"):
        data = json.loads((dataset / split / "annotations.json").read_text())
        assert {c["name"] for c in data["categories"]}.isdisjoint(held_names)
        assert {a["category_id"] for a in data["annotations"]} <= {W.category_id(p) for p in W.seen_pairs}
        for image in data["images"]:
            assert not any(mentions_pair(image["caption"], W, p) for p in W.held_out_pairs), image["caption"]
    test = json.loads((dataset / "test" / "annotations.json").read_text())
    assert len(test["categories"]) == len(W.pairs)
    assert {c["name"] for c in test["categories"] if c["held_out"]} == held_names
    assert any(W.is_held_out(W.pairs[a["category_id"] - 1]) for a in test["annotations"])  # test does use them


def test_same_category_ids_in_every_split(dataset):
    ids = {}
    for split in COUNTS:
        for c in json.loads((dataset / split / "annotations.json").read_text())["categories"]:
            assert ids.setdefault(c["name"], c["id"]) == c["id"]


def test_output_does_not_depend_on_workers(dataset, tmp_path):
    again = write_dataset(tmp_path / "again", **COUNTS, seed=3, config=TINY, workers=2, progress=False).parent
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        assert (again / path.relative_to(dataset)).read_bytes() == path.read_bytes(), path


def test_refuses_to_clobber(dataset, tmp_path):
    with pytest.raises(DatasetError, match="overwrite"):
        write_dataset(dataset, train=1, val=0, test=0, config=TINY, progress=False)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="does not look like a synthetic dataset"):
        write_dataset(other, train=1, val=0, test=0, config=TINY, overwrite=True, progress=False)
    assert (other / "notes.txt").read_text() == "keep me"


def test_overwrite_and_empty_splits(tmp_path):
    out = tmp_path / "d"
    write_dataset(out, train=2, val=0, test=0, config=TINY, progress=False)
    data = write_dataset(out, train=1, val=0, test=1, config=TINY, overwrite=True, progress=False)
    assert set(yaml.safe_load(data.read_text())) == {"train", "test", "texts"}
    assert not (out / "val").exists() and len(list((out / "train" / "images").iterdir())) == 1


@pytest.mark.parametrize("kwargs", [{"train": -1}, {"train": 0, "val": 0, "test": 0}, {"workers": 0}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(DatasetError):
        write_dataset(tmp_path / "x", **{"train": 1, "val": 0, "test": 0, **kwargs}, config=TINY, progress=False)


def test_check_no_held_out_catches_objects_and_captions():
    image = np.zeros((8, 8, 3), np.uint8)
    obj = SceneObject("red", "star", (0, 0, 4, 4), 10, 1.0, (2, 10))
    with pytest.raises(AssertionError, match="drawn"):
        check_no_held_out(Scene(image, (obj,), "a red star", "plain"), W)
    with pytest.raises(AssertionError, match="named"):
        check_no_held_out(Scene(image, (), "two red stars", "plain"), W)
    check_no_held_out(Scene(image, (), "a red circle and a blue star", "plain"), W)
