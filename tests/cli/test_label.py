"""``ovdet label`` on the command line: a real SIGKILL then --resume equals an uninterrupted run; one-line errors;
the labelled folder trains with ``ovdet train`` as it is."""

import json
import signal
import subprocess
import sys
import time

import pytest

from ovdet.cli.main import main
from tests.engine.test_label import _give_back_global_state, same_records, write_scenes  # noqa: F401 (a fixture)

CLASSES = "circle=red circle|blue circle|yellow circle, star=blue star|red star, square=orange square|blue square"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("label-cli")
    write_scenes(root / "images", 12)
    return root / "images"


@pytest.fixture(scope="module")
def whole(scenes, tmp_path_factory):
    """An uninterrupted run (what the killed run must equal, and what trains)."""
    out = tmp_path_factory.mktemp("label-cli-out") / "whole"
    assert main(["label", str(scenes), "--classes", CLASSES, "--out", str(out), "--samples", "0",
                 "--threads", "1"]) == 0  # batch 8
    return out


def _records(out):
    return (out / "records.jsonl").read_text().splitlines()


def test_sigkill_mid_run_loses_and_duplicates_nothing(scenes, whole, tmp_path):
    out = tmp_path / "killed"
    args = ["label", str(scenes), "--classes", CLASSES, "--out", str(out), "--batch", "1", "--threads", "1",
            "--samples", "0"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ovdet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "records.jsonl").exists() and len(_records(out)) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_records(out))
    assert 3 <= killed_at < 12, f"killed after {killed_at} images: the test proves nothing\n{proc.stderr.read()}"
    with open(out / "records.jsonl", "a") as f:
        f.write('{"key": "/half/written')  # a kill inside a write leaves a torn last line
    assert main([*args, "--resume"]) == 0
    same_records(_records(out), _records(whole))  # the same images in the same order: none lost, none twice
    assert (out / "data.yaml").read_text() == (whole / "data.yaml").read_text()
    for split in ("train", "val"):
        ours, theirs = (json.loads((d / "annotations" / f"{split}.json").read_text()) for d in (out, whole))
        assert ours["images"] == theirs["images"] and len(ours["annotations"]) == len(theirs["annotations"])


def test_bad_input_is_one_line_and_exit_2(scenes, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    cases = [
        (["label", str(tmp_path / "none"), "--classes", "a", "--out", str(tmp_path / "o")], "not found"),
        (["label", str(foreign), "--classes", "a", "--out", str(tmp_path / "o")], "no images or videos found"),
        (["label", str(scenes), "--classes", "a", "--conf", "b=2", "--out", str(tmp_path / "o")], "threshold"),
        (["label", str(scenes), "--classes", "a", "--out", str(foreign), "--overwrite"], "did not write"),
        (["label", str(scenes), "--classes", "a", "--out", str(tmp_path / "o"), "--format", "voc"], "formats must"),
        (["label", str(scenes), "--classes", "a", "--out", str(tmp_path / "o"), "--split", "0"], "split must"),
        (["label", str(scenes), "--classes", "a, A", "--out", str(tmp_path / "o")], "duplicate classes"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("ovdet label: error:") and message in err and "\n" not in err, err
    assert not (tmp_path / "o").exists() and (foreign / "keep.txt").exists()


def test_unreadable_inputs_are_listed_and_exit_3(tmp_path, capsys):
    write_scenes(tmp_path / "images", 2)
    (tmp_path / "images" / "bad.png").write_bytes(b"not a png")
    assert main(["label", str(tmp_path / "images"), "--classes", "star", "--out", str(tmp_path / "ds")]) == 3
    captured = capsys.readouterr()
    assert "1 skipped (unreadable)" in captured.err and "bad.png" in captured.err
    assert "class" in captured.out and "star" in captured.out  # the per-class summary table


def test_a_fresh_machine_can_train_on_the_labelled_dataset(whole, tmp_path, cache_dir):
    # cache_dir: a private embedding cache. The tiny text tower below is the one tests/engine/test_train.py trains
    # with (same config, same seed), so it would share cache entries ("blue circle") encoded in other batches, a float
    # rounding apart, and shift that test's loss curve
    from tests.conftest import TINY_CLIP_CONFIG
    from tests.engine.test_train import TINY_DETECTOR

    text = tmp_path / "tiny-text.json"
    text.write_text(json.dumps(TINY_CLIP_CONFIG))
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["boxes"] > 5 and summary["val"] > 0  # `ovdet label images/ --classes ... --out ds` (the fixture)
    run = tmp_path / "run"
    assert main(["train", "--data", str(whole / "data.yaml"), "--model", TINY_DETECTOR, "--text-encoder", str(text),
                 "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(run),
                 "--set", "warmup_epochs=0", "--set", "nbs=4", "--quiet"]) == 0  # fmt: skip
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and (run / "last" / "model.safetensors").is_file()
