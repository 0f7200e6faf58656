"""Dataset formats of labelled images: COCO (pycocotools), YOLO lines, Label Studio's documented import format."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ovdet.io.label_formats import LabelRecord, class_summary, coco_dataset, labelstudio_config, labelstudio_tasks
from ovdet.io.label_formats import yolo_lines

NAMES = ("forklift", "worker")


def _record(name="a.jpg", boxes=((10, 20, 110, 70), (0, 0, 50, 100)), scores=(0.9, 0.45), classes=(0, 1)):
    return LabelRecord.from_detections(f"/src/{name}", name, f"/src/{name}", None, False, (100, 200),
                                       np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                                       np.array(classes))  # fmt: skip


def test_record_round_trips_through_json_and_rounds():
    r = LabelRecord.from_detections("k", "a.jpg", "/a.jpg", None, False, (100, 200),
                                    np.array([[1.23456, 2, 50.5, 60], [5, 5, 5.4, 9]], np.float32),
                                    np.array([0.123456789, 0.9], np.float32), np.array([1, 0]))  # fmt: skip
    assert len(r.scores) == 1  # the box under a pixel wide is dropped
    assert r.boxes.tolist() == [[np.float32(1.23), 2.0, 50.5, 60.0]] and r.scores.tolist() == [np.float32(0.12346)]
    back = LabelRecord.from_json(json.loads(json.dumps(r.to_json())))
    assert back.to_json() == r.to_json()


def test_coco_and_yolo():
    from pycocotools.coco import COCO

    r = _record()
    data = coco_dataset([(7, r), (8, _record("b.jpg", boxes=(), scores=(), classes=()))], NAMES)
    coco = COCO()
    coco.dataset = json.loads(json.dumps(data))
    coco.createIndex()
    assert coco.getCatIds() == [1, 2] and [c["name"] for c in coco.loadCats([1, 2])] == list(NAMES)
    assert coco.imgs[7]["width"] == 200 and coco.imgs[7]["height"] == 100 and coco.getAnnIds(imgIds=[8]) == []
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[7]))
    assert [a["bbox"] for a in anns] == [[10.0, 20.0, 100.0, 50.0], [0.0, 0.0, 50.0, 100.0]]
    assert [a["category_id"] for a in anns] == [1, 2] and [a["score"] for a in anns] == [0.9, 0.45]
    assert [a["area"] for a in anns] == [5000.0, 5000.0] and all(a["iscrowd"] == 0 for a in anns)
    lines = yolo_lines(r).splitlines()
    assert lines == ["0 0.300000 0.450000 0.500000 0.500000", "1 0.125000 0.500000 0.250000 1.000000"]


# Label Studio's import format for image pre-annotations, written from its documentation
# (https://labelstud.io/guide/predictions, "JSON format for pre-annotations" and "Import bbox ... for images"; units:
# "x, y, width, and height of image annotations ... in percentages of overall image dimension").
LABEL_STUDIO_TASKS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "object", "minProperties": 1},
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["result"],
                    "properties": {
                        "model_version": {"type": "string"},
                        "score": {"type": "number"},
                        "result": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "type", "from_name", "to_name", "value"],
                                "properties": {
                                    "id": {"type": "string", "minLength": 1},
                                    "type": {"const": "rectanglelabels"},
                                    "from_name": {"type": "string"},
                                    "to_name": {"type": "string"},
                                    "original_width": {"type": "integer", "minimum": 1},
                                    "original_height": {"type": "integer", "minimum": 1},
                                    "image_rotation": {"type": "number"},
                                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                                    "readonly": {"type": "boolean"},
                                    "hidden": {"type": "boolean"},
                                    "value": {
                                        "type": "object",
                                        "required": ["x", "y", "width", "height", "rectanglelabels"],
                                        "properties": {
                                            "x": {"type": "number", "minimum": 0, "maximum": 100},
                                            "y": {"type": "number", "minimum": 0, "maximum": 100},
                                            "width": {"type": "number", "minimum": 0, "maximum": 100},
                                            "height": {"type": "number", "minimum": 0, "maximum": 100},
                                            "rotation": {"type": "number"},
                                            "rectanglelabels": {"type": "array", "items": {"type": "string"},
                                                                "minItems": 1},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("from_name, to_name", [("label", "image"), ("bbox", "img")])
def test_labelstudio_tasks_follow_the_documented_import_format(from_name, to_name):
    jsonschema = pytest.importorskip("jsonschema")
    records = [_record("a.jpg"), _record("b.jpg", boxes=(), scores=(), classes=())]
    tasks = labelstudio_tasks(records, NAMES, lambda r: f"/data/local-files/?d=ds/{r.name}", from_name=from_name,
                              to_name=to_name, model_version="ovdet test")  # fmt: skip
    tasks = json.loads(json.dumps(tasks))
    jsonschema.validate(tasks, LABEL_STUDIO_TASKS_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # the schema is not vacuous: a pixel box fails it
        bad = json.loads(json.dumps(tasks))
        bad[0]["predictions"][0]["result"][0]["value"]["x"] = 150
        jsonschema.validate(bad, LABEL_STUDIO_TASKS_SCHEMA)
    assert tasks[0]["data"] == {to_name: "/data/local-files/?d=ds/a.jpg"} and tasks[1]["predictions"][0]["result"] == []
    first = tasks[0]["predictions"][0]["result"][0]
    assert first["from_name"] == from_name and first["to_name"] == to_name
    assert first["value"] == {"x": 5.0, "y": 20.0, "width": 50.0, "height": 50.0, "rotation": 0,
                              "rectanglelabels": ["forklift"]}  # fmt: skip
    ids = [r["id"] for t in tasks for p in t["predictions"] for r in p["result"]]
    assert len(ids) == len(set(ids)) == 2
    # the labelling config names the same tags, and the data key the Image tag reads
    view = ET.fromstring(labelstudio_config(NAMES, from_name=from_name, to_name=to_name))
    image, rects = view.find("Image"), view.find("RectangleLabels")
    assert image.get("name") == to_name and image.get("value") == f"${to_name}"
    assert rects.get("name") == from_name and rects.get("toName") == to_name
    assert [label.get("value") for label in rects.findall("Label")] == list(NAMES)


def test_config_escapes_names():
    view = ET.fromstring(labelstudio_config(['a "quoted" <b> & c']))
    assert view.find("RectangleLabels/Label").get("value") == 'a "quoted" <b> & c'


def test_summary_counts_per_class():
    records = [_record(), _record("b.jpg", boxes=((1, 1, 9, 9),), scores=(0.5,), classes=(0,)),
               _record("c.jpg", boxes=(), scores=(), classes=())]  # fmt: skip
    s = class_summary(records, (*NAMES, "pallet"))
    assert s["forklift"] == {"count": 2, "images": 2, "mean_score": 0.7}
    assert s["worker"] == {"count": 1, "images": 1, "mean_score": 0.45}
    assert s["pallet"] == {"count": 0, "images": 0, "mean_score": None}
