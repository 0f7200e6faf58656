import cv2
import yaml

from tests.tools import load_tool


def test_dataset_and_demo(tmp_path, capsys):
    tool = load_tool("make_synthetic")
    assert tool.main([str(tmp_path / "d"), "--train", "2", "--val", "1", "--test", "2", "--workers", "1",
                      "--demo", str(tmp_path / "demo.jpg")]) == 0
    out = capsys.readouterr().out
    assert "held-out pairs shown: blue ring, yellow cross" in out
    assert cv2.imread(str(tmp_path / "demo.jpg")) is not None
    assert set(yaml.safe_load((tmp_path / "d" / "data.yaml").read_text())) == {"train", "val", "test", "texts"}
    # a second run into the same folder needs --overwrite: one line on stderr, status 2
    assert tool.main([str(tmp_path / "d"), "--train", "1", "--val", "0", "--test", "0"]) == 2
    assert "--overwrite" in capsys.readouterr().err
