import json

import pytest

from ovdet.cli.main import main
from tests.conftest import BUS, ZIDANE, run_cli


@pytest.fixture
def saved_model(tiny_model, tmp_path, cache_dir):
    tiny_model.set_classes(["person"])
    return str(tiny_model.save(tmp_path / "model"))


def test_predict_prints_saves_and_writes_json(saved_model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "predict", str(BUS), str(ZIDANE), "--classes", "person, bus", "--model", saved_model,
        "--conf", "0.4", "--imgsz", "320", "--save", str(out), "--json", str(tmp_path / "d.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{BUS}:" in proc.stdout and f"{ZIDANE}:" in proc.stdout
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["bus.jpg", "zidane.jpg"]
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["path"] for r in records] == [str(BUS), str(ZIDANE)]
    assert all(d["label"] in ("person", "bus") for r in records for d in r["detections"])


def test_errors_are_one_line_without_traceback(tmp_path):
    proc = run_cli("predict", str(tmp_path / "missing.jpg"), "--classes", "a")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ovdet predict: error: image file not found: {tmp_path / 'missing.jpg'}"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classes", " , "], "class list is empty"),
        (["--classes", "a", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--classes", "a", "--model", "ovdet-n"], "huggingface.co is unreachable"),
    ],
)
def test_bad_input_exits_2_with_the_fix(args, message, capsys, cache_dir):
    assert main(["predict", str(BUS), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("ovdet predict: error:")


def test_corrupt_image_is_named_and_skipped(saved_model, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    assert main(["predict", str(bad), "--classes", "a", "--model", saved_model]) == 3  # finished, some skipped
    err = capsys.readouterr().err
    assert f"cannot decode image {bad}" in err and "1 skipped (unreadable)" in err


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "predict" in proc.stdout
