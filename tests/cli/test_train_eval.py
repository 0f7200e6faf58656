import json

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
