import json

import torch

import ovdet
from ovdet.cli.main import main
from tests.conftest import BUS
from tests.io.conftest import write_ultralytics_checkpoint


def test_convert_ultralytics_then_predict_with_the_carried_classes(tmp_path, capsys):
    from ultralytics.nn.tasks import WorldModel

    torch.manual_seed(0)
    world = WorldModel("yolov8n-worldv2.yaml", nc=80, verbose=False)
    world.txt_feats = torch.nn.functional.normalize(world.txt_feats, dim=-1)
    world.names = {i: f"thing {i}" for i in range(80)}
    checkpoint = write_ultralytics_checkpoint(world, tmp_path / "yolov8n-worldv2.pt")
    out = tmp_path / "converted"

    assert main(["convert", "ultralytics", str(checkpoint), str(out), "--trust-pickle"]) == 0
    assert "yoloworldv2-n, 80 classes" in capsys.readouterr().err
    assert ovdet.load(out).names == [f"thing {i}" for i in range(80)]
    # no --classes: the converted model's own vocabulary, offline (no text encoder needed)
    assert main(["predict", str(BUS), "--model", str(out), "--imgsz", "160", "--conf", "0.01", "--json", str(tmp_path / "d.json")]) == 0
    records = json.loads((tmp_path / "d.json").read_text())
    assert all(d["label"].startswith("thing ") for d in records[0]["detections"])


def test_convert_without_trust_flag_is_refused_in_one_line(tmp_path, capsys):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"\x80\x04")
    assert main(["convert", "ultralytics", str(checkpoint), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-pickle" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
