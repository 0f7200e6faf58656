import json
import re
from pathlib import Path

from ovdet.cli.main import main
from tests.fixtures_data import make_coco


def test_eval_cli_writes_metrics_and_predictions(tiny_model, tmp_path, cache_dir, capsys):
    data = make_coco(tmp_path / "d")
    tiny_model.set_classes(["x"])
    model_dir = tiny_model.save(tmp_path / "m")
    code = main(["eval", "--model", model_dir, "--data", str(data), "--imgsz", "128", "--out", str(tmp_path / "e")])
    assert code == 0
    out = capsys.readouterr().out
    assert "AP=" in out and "AP50=" in out
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["images"] == 6 and metrics["metric"] == "coco"
    assert isinstance(json.loads((tmp_path / "e" / "predictions.json").read_text()), list)


def test_train_and_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--resume"]) == 2
    assert main(["train", "--data", "x.yaml", "--set", "nope=1"]) == 2
    assert main(["eval", "--data", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ovdet train: error: dataset file {tmp_path / 'none.yaml'} does not exist",
        "ovdet train: error: --resume needs --out RUN, the run folder to continue",
        err[2],
        f"ovdet eval: error: dataset file {tmp_path / 'none.yaml'} does not exist",
    ]
    assert "unknown setting 'nope'" in err[2]


def _drop(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_eval_prints_the_per_class_table_and_a_dash_for_what_does_not_apply(tiny_model, tmp_path, cache_dir, capsys):
    """The per-class table ends `ovdet eval` as ultralytics' validator prints one; a class without instances in the
    split and size ranges without objects (all generated objects are < 32² px) are not applicable: `null` in
    metrics.json and `–` on screen, never 0."""
    data = make_coco(tmp_path / "d")
    _drop(tmp_path / "d" / "val.json",
          lambda d: d.update(annotations=[a for a in d["annotations"] if a["category_id"] != 7]))  # no green square
    tiny_model.set_classes(["x"])
    model_dir = tiny_model.save(tmp_path / "m")
    assert main(["eval", "--model", model_dir, "--data", str(data), "--imgsz", "128", "--out", str(tmp_path / "e")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["class", "instances", "AP50", "AP"])
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in lines[header + 1 : header + 4]}
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    per_class = {r["name"]: r for r in metrics["per_class"]}
    assert set(rows) == set(per_class) == {"red square", "blue circle", "green square"}
    assert rows["green square"] == ["0", "–", "–"]
    assert per_class["green square"] == {**per_class["green square"], "instances": 0, "AP50": None, "AP": None}
    for name in ("red square", "blue circle"):
        assert rows[name] == [str(per_class[name]["instances"]), f"{per_class[name]['AP50']:.4f}", f"{per_class[name]['AP']:.4f}"]
        assert per_class[name]["instances"] > 0
    assert metrics["APm"] is None and metrics["APl"] is None and metrics["APs"] is not None
    summary = dict(item.split("=") for item in next(line for line in lines if line.startswith("AP=")).split())
    assert summary["APm"] == summary["APl"] == "–" and summary["APs"] == f"{metrics['APs']:.4f}"


def test_training_on_a_val_split_without_iscrowd_logs_val_ap_each_epoch(tmp_path, caplog):
    """A val split without the optional `iscrowd` / `area` fields once killed training at the end of epoch 1; now it
    is mended before evaluation and every epoch's line carries val AP50 and AP."""
    import logging

    from tests.conftest import TINY_CLIP_CONFIG

    data = make_coco(tmp_path / "d", n_train=8, n_val=4)
    _drop(tmp_path / "d" / "val.json", lambda d: [(a.pop("iscrowd"), a.pop("area")) for a in d["annotations"]])
    text = tmp_path / "tiny-text.json"
    text.write_text(json.dumps(TINY_CLIP_CONFIG))
    detector = str(Path(__file__).parent.parent / "tiny-detector.yaml")
    with caplog.at_level(logging.INFO, logger="ovdet.engine.train"):
        code = main(["train", "--data", str(data), "--model", detector, "--text-encoder", str(text), "--epochs", "2",
                     "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(tmp_path / "run"),
                     "--set", "warmup_epochs=0", "--set", "nbs=4", "--quiet"])  # fmt: skip
    assert code == 0
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [m.split(":")[0] for m in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all(re.search(r"\| val AP50 (\d\.\d{4}|–) AP (\d\.\d{4}|–)", m) for m in epochs), epochs


def test_train_refuses_a_split_without_labels_or_with_two_categories_of_one_name(tmp_path, capsys):
    # a split without one labelled object trained every name as background (cls loss 7, no error); two categories
    # of one name crashed prompt tuning with an IndexError traceback after the run folder was written
    tiny = str(Path(__file__).parent.parent / "tiny-detector.yaml")
    unlabelled = make_coco(tmp_path / "unlabelled", n_train=3, n_val=1)
    _drop(tmp_path / "unlabelled" / "train.json", lambda d: d.update(annotations=[]))
    named_twice = make_coco(tmp_path / "twice", n_train=3, n_val=1)
    _drop(tmp_path / "twice" / "train.json", lambda d: d["categories"][1].update(name=d["categories"][0]["name"]))
    for data, out in ((unlabelled, "r1"), (named_twice, "r2")):
        args = ["train", "--data", str(data), "--model", tiny, "--out", str(tmp_path / out), "--tune", "full"]
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("ovdet train: error: ") for line in err)
    assert "split 'train' has no labelled object in its 3 images" in err[0]
    assert "two categories are one class name ('red square' twice)" in err[1]
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
