import json

import numpy as np
import pytest

from ovdet.data.datasets import load_dataset_config, load_split
from ovdet.engine.evaluate import evaluate
from tests.fixtures_data import make_coco, make_lvis, make_yolo


@pytest.fixture
def model(tiny_model, cache_dir):
    return tiny_model.set_classes(["keep me"])


def test_coco_metrics_equal_pycocotools_on_the_written_predictions(model, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = load_dataset_config(make_coco(tmp_path / "d"))
    split = load_split(data, "val")
    metrics = evaluate(model, split, texts=data.texts, imgsz=128, out_dir=tmp_path / "out", progress=False)
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {5, 6, 7}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["AP"] == metrics["AP"]
    gt = COCO(str(tmp_path / "d" / "val.json"))
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "out" / "predictions.json")), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    np.testing.assert_allclose([metrics[k] for k in ("AP", "AP50", "AP75")], np.maximum(ev.stats[:3], 0))
    assert model.names == ["keep me"]  # the model's own vocabulary is restored


def test_lvis_metrics_equal_the_lvis_package(model, tmp_path):
    from ovdet.engine.lvis_compat import import_lvis

    data = load_dataset_config(make_lvis(tmp_path / "d"))
    metrics = evaluate(model, load_split(data, "val"), metric="lvis", imgsz=128, out_dir=tmp_path / "out", progress=False)
    assert metrics["max_det"] == 1000 and {"APr", "APc", "APf"} <= set(metrics)
    LVIS, LVISResults, LVISEval = import_lvis()
    gt = LVIS(str(tmp_path / "d" / "val.json"))
    ev = LVISEval(gt, LVISResults(gt, str(tmp_path / "out" / "predictions.json"), max_dets=1000), "bbox")
    ev.params.max_dets = 1000
    ev.run()
    for key in ("AP", "AP50", "APr", "APc", "APf"):
        assert metrics[key] == pytest.approx(max(ev.results[key], 0.0))


def test_lvis_shim_leaves_numpy_alone():
    from ovdet.engine.lvis_compat import import_lvis

    import_lvis()
    assert not hasattr(np, "float")


def test_groups_and_yolo_ground_truth(model, tmp_path):
    data = load_dataset_config(make_yolo(tmp_path / "d"))
    split = load_split(data, "val")
    split.categories[0]["held_out"] = True
    for c in split.categories[1:]:
        c["held_out"] = False
    metrics = evaluate(model, split, imgsz=128, group_by="held_out", progress=False)
    assert set(metrics["groups"]) == {"held_out=True", "held_out=False"}
    assert metrics["images"] == 8
