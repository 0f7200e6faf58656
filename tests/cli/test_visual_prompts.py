"""``ovdet predict/stream --visual-prompts prompts.json``: classes given by example boxes on the command line."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ovdet.cli.main import main
from tests.model.test_visual import RING_A, RING_B, SCENE_A, SCENE_B, _iou


@pytest.fixture
def files(tmp_path):
    """A reference image under refs/, two images to predict on, and a prompts file beside refs/."""
    (tmp_path / "refs").mkdir()
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "refs" / "a.png"), SCENE_A.image)
    cv2.imwrite(str(tmp_path / "frames" / "0.png"), SCENE_A.image)
    cv2.imwrite(str(tmp_path / "frames" / "1.png"), SCENE_B.image)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"thing": [{"image": "refs/a.png", "boxes": [list(RING_A)]}]}))
    return tmp_path, prompts


def test_predict_finds_a_class_given_only_by_example(files, capsys, monkeypatch):
    folder, prompts = files
    monkeypatch.chdir("/")  # the image path in the file is relative to the file, not to the working directory
    out = folder / "out.json"
    args = ["predict", str(folder / "frames" / "1.png"), "--visual-prompts", str(prompts), "--classes", "purple cross",
            "--json", str(out), "--threads", "1"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    (record,) = json.loads(out.read_text())
    found = {d["label"]: d["box"] for d in record["detections"]}
    assert sorted(found) == ["purple cross", "thing"] and _iou(found["thing"], RING_B) > 0.9


def test_stream_takes_visual_prompts(files, capsys):
    folder, prompts = files
    assert main(["stream", str(folder / "frames"), "--visual-prompts", str(prompts), "--threads", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " frame " in line]
    assert len(lines) == 2 and all(line.endswith(": 1 thing") for line in lines), lines


def test_outputs_never_replace_a_prompt_image(files, capsys):
    folder, prompts = files
    image, ref = str(folder / "frames" / "1.png"), folder / "refs" / "a.png"
    before = ref.read_bytes()
    assert main(["predict", image, "--visual-prompts", str(prompts), "--json", str(ref)]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert main(["predict", image, "--visual-prompts", str(prompts), "--save", str(folder / "refs")]) == 2
    assert "holds input images" in capsys.readouterr().err
    assert ref.read_bytes() == before


@pytest.mark.parametrize("command", ["predict", "stream"])
def test_outputs_never_replace_the_prompts_or_classes_file(files, command, capsys, monkeypatch):
    """The prompts file and the classes file are inputs too: --json must not write over either."""
    folder, prompts = files
    classes = folder / "classes.txt"
    classes.write_text("purple cross\n")
    before = prompts.read_bytes()
    monkeypatch.setattr(f"ovdet.cli.{command}.resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for output in (prompts, classes):
        args = [command, str(folder / "frames"), "--visual-prompts", str(prompts), "--classes-file", str(classes),
                "--json", str(output)]  # fmt: skip
        assert main(args) == 2
        assert f"--json {output} is one of the inputs" in capsys.readouterr().err
    assert prompts.read_bytes() == before and classes.read_text() == "purple cross\n"


def test_a_prompt_image_whose_name_looks_like_a_glob_is_read_and_protected(files, capsys, monkeypatch):
    """``ref [1].png`` is a file of that name, to read as a prompt and never to write over (--json)."""
    folder, prompts = files
    ref = folder / "refs" / "ref [1].png"
    (folder / "refs" / "a.png").rename(ref)
    prompts.write_text(json.dumps({"thing": [{"image": "refs/ref [1].png", "boxes": [list(RING_A)]}]}))
    monkeypatch.setattr("ovdet.cli.predict.resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["predict", str(folder / "frames"), "--visual-prompts", str(prompts), "--json", str(ref)]) == 2
    assert f"--json {ref} is one of the inputs" in capsys.readouterr().err
    assert np.all(cv2.imread(str(ref)) == SCENE_A.image)


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"thing": [{"image": "refs/a.png", "boxes": [[1, 2, 3, 4]]', "is not valid JSON: "),
     ('{"thing": [{"image": "refs/gone.png", "boxes": [[1, 2, 30, 40]]}]}', "image refs/gone.png not found"),
     ('{"thing": [{"image": "refs/a.png", "boxes": [[1, 2, 3000, 40]]}]}', "reaches outside the image (330x200 px)"),
     ('{"thing": [{"image": "refs/a.png", "boxes": [[1, 2, 1, 40]]}]}', "is empty or flat"),
     ('{"thing": [{"image": "refs/a.png", "boxes": [["x", 2, 30, 40]]}]}', "must be numbers, got 'x'"),
     ('{"purple cross": [{"image": "refs/a.png", "boxes": [[1, 2, 30, 40]]}]}', "duplicate classes")],
)  # fmt: skip
def test_bad_prompts_files_exit_2_in_one_line_before_the_model_loads(files, content, message, capsys, monkeypatch):
    folder, prompts = files
    prompts.write_text(content)
    monkeypatch.setattr("ovdet.cli.predict.resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    args = ["predict", str(folder / "frames" / "1.png"), "--visual-prompts", str(prompts), "--classes", "purple cross"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ovdet predict: error: ") and message in err[0], err
    assert np.all(cv2.imread(str(folder / "refs" / "a.png")) == SCENE_A.image)  # nothing written anywhere near it
