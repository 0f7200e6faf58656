import json
import logging

import numpy as np
import pytest
import yaml

from ovdet.data.datasets import load_dataset_config, load_grounding, load_split
from ovdet.errors import DatasetError
from tests.fixtures_data import CLASSES, add_grounding, make_coco, make_yolo


def test_coco_split_keeps_names_ids_and_texts(tmp_path):
    data = load_dataset_config(make_coco(tmp_path))
    assert data.format == "coco" and set(data.splits) == {"train", "val"}
    assert data.texts["red square"] == ("red square", "red box")
    split = load_split(data, "train")
    assert split.names == tuple(CLASSES) and split.category_ids == (5, 6, 7)
    record = split.records[0]
    raw = json.loads((tmp_path / "train.json").read_text())
    first = [a for a in raw["annotations"] if a["image_id"] == record.image_id][0]
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(record.boxes[0], [x, y, x + w, y + h])
    assert split.names[record.labels[0]] == next(c["name"] for c in raw["categories"] if c["id"] == first["category_id"])


def test_yolo_split(tmp_path):
    data = load_dataset_config(make_yolo(tmp_path))
    split = load_split(data, "val")
    assert data.format == "yolo" and split.names == tuple(CLASSES) and len(split.records) == 8
    assert all(r.normalized and (r.boxes <= 1).all() for r in split.records)


def test_grounding_phrases_come_from_caption_spans(tmp_path):
    yaml_path = make_coco(tmp_path)
    add_grounding(tmp_path, yaml_path)
    data = load_dataset_config(yaml_path)
    records = load_grounding(data.grounding[0])
    assert records and all(set(r.phrases) <= set(CLASSES) for r in records)
    assert all(r.phrases[label] for r in records for label in r.labels)


def test_bad_annotations_are_skipped_and_counted(tmp_path, caplog):
    yaml_path = make_coco(tmp_path)
    raw = json.loads((tmp_path / "train.json").read_text())
    raw["annotations"] += [
        {**raw["annotations"][0], "id": 900, "bbox": [5, 5, 0, 10]},  # zero width
        {**raw["annotations"][0], "id": 901, "category_id": 99},  # unknown category
        {**raw["annotations"][0], "id": 902, "bbox": [500, 500, 10, 10]},  # outside the image
        {**raw["annotations"][0]},  # duplicate id
    ]
    raw["images"].append({"id": 999, "file_name": "missing.jpg", "height": 10, "width": 10})
    (tmp_path / "train.json").write_text(json.dumps(raw))
    data = load_dataset_config(yaml_path)
    with caplog.at_level(logging.WARNING):
        split = load_split(data, "train")
    assert len(split.records) == 12
    (message,) = [r.message for r in caplog.records if "skipped" in r.message]
    for kind in ("boxes of zero or negative size", "unknown category ids", "boxes outside the image", "duplicate annotation ids",
                 "missing or empty image files"):  # fmt: skip
        assert f"1 × {kind}" in message
    with pytest.raises(DatasetError, match="strict"):
        load_split(data, "train", strict=True)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"names": ["a"]}, "no splits"),
        ({"train": {"images": "x"}}, "exactly 'images' and 'annotations'"),
        ({"train": "images/train", "names": ["a"]}, "images folder of split 'train' does not exist"),
        ({"train": "images", "val": {"images": "a", "annotations": "b"}}, "all be COCO"),
        ({"train": "images/train"}, "need 'names'"),
    ],
)
def test_bad_dataset_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(DatasetError, match=message):
        load_dataset_config(path)


def test_unknown_split_lists_splits(tmp_path):
    data = load_dataset_config(make_coco(tmp_path))
    with pytest.raises(DatasetError, match="has train, val"):
        load_split(data, "test")


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_two_categories_with_one_name_are_one_error(tmp_path, fmt):
    # they were one class to the model (set_classes collapsed them) but two labels to the data: prompt tuning
    # crashed with an IndexError, full tuning trained one name as its own negative
    yaml_path = make_coco(tmp_path) if fmt == "coco" else make_yolo(tmp_path)
    if fmt == "coco":
        raw = json.loads((tmp_path / "train.json").read_text())
        raw["categories"][2]["name"] = "Red  Square"
        (tmp_path / "train.json").write_text(json.dumps(raw))
    else:
        config = yaml.safe_load(yaml_path.read_text())
        config["names"][2] = config["names"][0]
        yaml_path.write_text(yaml.safe_dump(config))
    data = load_dataset_config(yaml_path)
    same = "'red square' and 'Red  Square'" if fmt == "coco" else "'red square' twice"
    with pytest.raises(DatasetError, match=f"two categories are one class name \\({same}\\); .* rename one or merge"):
        load_split(data, "train")
