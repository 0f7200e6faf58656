"""The reliability rules on the command line: finished work is never lost, outputs and settings are checked before the
model loads, SIGTERM is Ctrl-C, one bad image among many is skipped and reported, and every command resolves --model
alike. Each test is an example from the reliability issue, with the value a user relies on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import cv2
import pytest

from ovdet.cli.main import main
from tests.conftest import BUS, ZIDANE, run_cli
from tests.media import read_video, write_video


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_encoder):
    import torch

    import ovdet
    from tests.conftest import make_scorable

    torch.manual_seed(0)
    model = make_scorable(ovdet.build("ovdet-n", tiny_encoder)).set_classes(["person"])
    return str(model.save(tmp_path_factory.mktemp("model") / "model"))


@pytest.fixture(scope="module")
def folder_with_one_corrupt(tmp_path_factory):
    """20 good images and one corrupt one (the issue's example)."""
    folder = tmp_path_factory.mktemp("images")
    bus = cv2.resize(cv2.imread(str(BUS)), (96, 128))
    for i in range(20):
        cv2.imwrite(str(folder / f"img{i:02d}.jpg"), bus)
    (folder / "img07b.jpg").write_bytes(b"\xff\xd8\xff not a jpeg at all")
    return folder


def expect_error(args: list[str], message: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ovdet {args[0]}: error:") and message in err[-1], err


def test_one_corrupt_image_among_twenty_is_skipped_and_the_rest_is_written(saved_model, folder_with_one_corrupt, tmp_path):
    out, js = tmp_path / "out", tmp_path / "out.json"
    proc = run_cli("predict", str(folder_with_one_corrupt), "--classes", "person", "--model", saved_model,
                   "--imgsz", "64", "--save", str(out), "--json", str(js))  # fmt: skip
    assert proc.returncode == 3, proc.stderr  # finished, some skipped
    assert f"skipping: cannot decode image {folder_with_one_corrupt / 'img07b.jpg'}" in proc.stderr
    assert "20 images predicted, 1 skipped (unreadable)" in proc.stderr
    records = json.loads(js.read_text())
    assert len(records) == 20 and all("img07b" not in r["path"] for r in records)
    assert len([p for p in out.iterdir() if p.suffix == ".jpg"]) == 20


def test_sigterm_during_predict_leaves_valid_json_of_the_images_done(saved_model, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    image = cv2.imread(str(ZIDANE))
    for i in range(400):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
    js = tmp_path / "d.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovdet", "predict", str(folder), "--classes", "person", "--model", saved_model,
         "--imgsz", "320", "--batch", "1", "--json", str(js), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline()  # the first image is done
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    records = json.loads(js.read_text())  # a complete, valid array
    assert 1 <= len(records) < 400 and "terminated (SIGTERM)" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "many"]  # no temporary file left


def test_sigterm_on_a_stream_leaves_a_playable_video(saved_model, tmp_path):
    video = write_video(tmp_path / "long.mp4", frames=600, fps=30.0)
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovdet", "stream", str(video), "--classes", "person", "--model", saved_model,
         "--imgsz", "64", "--out", str(out), "--json", str(tmp_path / "o.jsonl"), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ((tmp_path / "o.jsonl").exists() and len((tmp_path / "o.jsonl").read_text().splitlines()) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # what `timeout 5 ovdet stream ...` and `docker stop` send
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    frames, _, _ = read_video(out)
    assert 3 <= len(frames) < 600 and not list(tmp_path.glob(".*partial*"))


def test_a_stream_that_reads_no_frame_claims_no_video(saved_model, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"junk")
    assert main(["stream", str(folder), "--model", saved_model, "--out", str(tmp_path / "s.mp4")]) == 3  # skipped
    err = capsys.readouterr().err
    assert "0 frames" in err and "annotated video: " not in err and "no annotated video written" in err
    assert f"1 skipped (unreadable): {folder / 'a.jpg'}" in err
    assert not (tmp_path / "s.mp4").exists()


def test_stream_without_outputs_prints_each_frame(saved_model, tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=5)
    proc = run_cli("stream", str(video), "--model", saved_model, "--imgsz", "64")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [f"{video} frame {i}" for i in range(5)]


def test_outputs_are_checked_before_the_model_loads(saved_model, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dir").mkdir()
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "keep.txt").write_text("mine")
    bus = str(BUS)
    # a model that cannot load proves the check came first: its error would be another
    expect_error(["predict", bus, "--classes", "a", "--save", str(tmp_path / "file"), "--model", "nope"], "is a file", capsys)
    expect_error(["predict", bus, "--classes", "a", "--json", str(tmp_path / "dir"), "--model", "nope"], "is a folder", capsys)
    expect_error(["predict", bus, "--classes", "a", "--save", str(tmp_path / "users"), "--model", "nope"],
                 "holds files ovdet did not write (keep.txt)", capsys)  # fmt: skip
    expect_error(["predict", bus, "--classes", "a", "--json", bus], "is one of the inputs", capsys)
    expect_error(["predict", str(BUS.parent), "--classes", "a", "--save", str(BUS.parent)], "holds input images", capsys)
    expect_error(["eval", "--data", "x.yaml", "--out", str(tmp_path / "file")], "is a file", capsys)
    expect_error(["train", "--data", "x.yaml", "--out", str(tmp_path / "file")], "is a file", capsys)
    expect_error(["train", "--data", "x.yaml", "--out", str(tmp_path / "users")], "keep.txt", capsys)
    expect_error(["stream", bus, "--out", str(tmp_path / "dir")], "cannot write a video to", capsys)
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "users" / "keep.txt").read_text() == "mine"

    import tempfile

    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # noqa: A002 (tempfile's own name); root writes anywhere, so pretend
        if dir is not None and str(dir).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, dir=dir, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    expect_error(["predict", bus, "--classes", "a", "--json", str(tmp_path / "ro" / "x.json")], "is not writable", capsys)
    expect_error(["eval", "--data", "x.yaml", "--out", str(tmp_path / "ro" / "e")], "is not writable", capsys)


def test_convert_never_replaces_the_users_folder_or_file(tmp_path, capsys):
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    (tmp_path / "f").write_text("mine")
    expect_error(["convert", "ultralytics", str(tmp_path / "ckpt.pt"), str(tmp_path / "out"), "--trust-pickle"],
                 "holds files ovdet did not write (keep)", capsys)  # fmt: skip
    expect_error(["convert", "ultralytics", str(tmp_path / "ckpt.pt"), str(tmp_path / "f"), "--trust-pickle"],
                 "is a file", capsys)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "f", "out"]


@pytest.mark.parametrize(
    "device, message",
    [("cuda", "no CUDA GPU is usable here"), ("cuda:7", "CUDA"), ("mps", "MPS is not available"),
     ("foo", "unknown device 'foo'")],  # fmt: skip
)
def test_devices_this_machine_lacks_are_one_line(device, message, capsys):
    import torch

    if torch.cuda.is_available() and device.startswith("cuda"):
        pytest.skip("this machine has a GPU")
    for command in (["predict", str(BUS), "--classes", "a"], ["stream", str(BUS), "--classes", "a"],
                    ["train", "--data", "x.yaml", "--out", "unused-run"]):  # fmt: skip
        expect_error([*command, "--device", device], message, capsys)


def test_an_input_size_that_cannot_fit_is_refused_with_the_estimate(capsys):
    expect_error(["predict", str(BUS), "--classes", "a", "--imgsz", "100000"], "GiB for one forward pass", capsys)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 displays")
def test_show_with_an_unreachable_display_is_one_line(saved_model, tmp_path):
    import re

    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    proc = run_cli("stream", str(BUS), "--model", saved_model, "--show", env={"DISPLAY": ":97"})
    assert proc.returncode == 2, proc.stderr  # not 134: Qt never got to abort the process
    if gui and gui.group(1).upper() != "NONE":
        assert "cannot open a window on display ':97'" in proc.stderr


def test_train_and_predict_resolve_model_names_alike():
    from ovdet.io.resolve import resolve_model

    assert resolve_model("ovdet-synth", for_training=True).names  # the bundled weights, as predict loads them


def test_predict_takes_several_prompts_per_class_and_class_files(saved_model, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("# people\nperson=person|human\n\nbus\n", encoding="utf-8")
    proc = run_cli("predict", str(BUS), "--classes-file", str(classes), "--model", saved_model, "--imgsz", "64",
                   "--conf", "0", "--max-det", "3", "--json", str(tmp_path / "d.json"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    labels = {d["label"] for d in json.loads((tmp_path / "d.json").read_text())[0]["detections"]}
    assert labels <= {"person", "bus"} and labels
    proc = run_cli("predict", str(BUS), "--classes", "red circle, red circle, star", "--model", saved_model)
    assert proc.returncode == 2 and "duplicate classes: 'red circle' twice" in proc.stderr


def test_predict_points_videos_to_stream(tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", frames=2)
    expect_error(["predict", str(video), "--classes", "a"], f"Use `ovdet stream {video}`", capsys)


# ---------------------------------------------------------------------------------------------------------------------
# found by a new user trying the previous round (each a fault of the kinds above)


def test_stream_never_writes_over_its_inputs_or_one_output_over_another(tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", frames=3)
    second = write_video(tmp_path / "cam-1.avi", frames=3)
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.jpg"), cv2.imread(str(BUS)))
    before = video.read_bytes()
    expect_error(["stream", str(video), "--out", str(video)], "is one of the inputs", capsys)
    expect_error(["stream", str(video), "--json", str(video)], "is one of the inputs", capsys)
    expect_error(["stream", str(frames), "--json", str(frames / "a.jpg")], "is one of the inputs", capsys)
    expect_error(["stream", str(video), str(second), "--out", str(tmp_path / "cam.avi")], "is one of the inputs", capsys)
    expect_error(["stream", str(video), "--out", str(tmp_path / "x.mp4"), "--json", str(tmp_path / "x.mp4")],
                 "--json and --out are the same file", capsys)  # fmt: skip
    assert video.read_bytes() == before and not (tmp_path / "x.mp4").exists()


def test_predict_overwrite_never_replaces_the_users_files(saved_model, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "bus.jpg").write_bytes(b"the user's own photo")
    (folder / "report.txt").write_text("notes")
    args = ["predict", str(BUS), "--classes", "person", "--model", saved_model, "--imgsz", "64", "--save", str(folder)]
    proc = run_cli(*args, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (folder / "bus.jpg").read_bytes() == b"the user's own photo" and (folder / "bus_1.jpg").is_file()
    assert not (folder / ".ovdet.json").exists()  # a folder of the user's is not claimed as ovdet's
    proc = run_cli(*args)  # so without --overwrite it is still refused
    assert proc.returncode == 2 and "holds files ovdet did not write (bus.jpg, bus_1.jpg, report.txt)" in proc.stderr


def test_json_inside_the_save_folder(saved_model, tmp_path):
    out = tmp_path / "runs" / "out"
    args = ["predict", str(BUS), "--classes", "person", "--model", saved_model, "--imgsz", "64", "--save", str(out),
            "--json", str(out / "detections.json")]  # fmt: skip
    for _ in range(2):  # and again into the same folder
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
    (record,) = json.loads((out / "detections.json").read_text())
    assert record["saved"] == str(out / "bus.jpg")
    assert sorted(p.name for p in out.iterdir()) == [".ovdet.json", "bus.jpg", "detections.json"]


def test_resume_refuses_settings_it_cannot_change(tmp_path, capsys):
    expect_error(["train", "--out", str(tmp_path), "--resume", "--epochs", "3"], "--epochs cannot change when resuming",
                 capsys)  # fmt: skip


def test_a_full_disk_is_one_line(saved_model, tmp_path, monkeypatch, capsys):
    import errno

    from ovdet.fileio import JsonArrayWriter

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JsonArrayWriter, "write", full)
    args = ["predict", str(BUS), "--classes", "person", "--model", saved_model, "--imgsz", "64"]
    expect_error([*args, "--json", str(tmp_path / "d.json")], "No space left on device; free some space", capsys)
    assert json.loads((tmp_path / "d.json").read_text()) == []  # closed and valid all the same


def test_bad_dataset_files_and_fields_are_one_line(saved_model, tmp_path, capsys):
    from tests.fixtures_data import make_coco

    expect_error(["eval", "--data", str(BUS), "--out", str(tmp_path / "e")], "must be a YAML text file", capsys)
    data = make_coco(tmp_path / "d")
    expect_error(["eval", "--data", str(data), "--model", saved_model, "--imgsz", "64", "--out", str(tmp_path / "e"),
                  "--group-by", "nosuchfield"], "has the field 'nosuchfield'", capsys)  # fmt: skip


def test_an_interrupted_eval_leaves_no_stale_metrics(saved_model, tmp_path, monkeypatch):
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.engine.evaluate import evaluate
    from ovdet.io.resolve import load_model
    from tests.fixtures_data import make_coco

    data = load_dataset_config(make_coco(tmp_path / "d"))
    model = load_model(saved_model)
    evaluate(model, load_split(data, "val"), imgsz=64, out_dir=tmp_path / "e", progress=False)
    assert (tmp_path / "e" / "metrics.json").is_file()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(type(model), "predict_iter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, load_split(data, "val"), imgsz=64, out_dir=tmp_path / "e", progress=False)
    assert not (tmp_path / "e" / "metrics.json").exists()  # not the last run's beside this run's predictions
    assert json.loads((tmp_path / "e" / "predictions.json").read_text()) == []


def test_no_output_replaces_the_model_it_runs(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"my model")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "config.json").write_text("{}")
    (tmp_path / "te.safetensors").write_bytes(b"my weights")
    bus = str(BUS)
    for args in (["predict", bus, "--model", str(tmp_path / "m.onnx"), "--json", str(tmp_path / "m.onnx")],
                 ["stream", bus, "--model", str(tmp_path / "m.onnx"), "--json", str(tmp_path / "m.onnx")],
                 ["predict", bus, "--model", str(tmp_path / "saved"), "--json", str(tmp_path / "saved" / "config.json")],
                 ["predict", bus, "--text-encoder", f"ViT-B-32:{tmp_path / 'te.safetensors'}", "--json",
                  str(tmp_path / "te.safetensors")]):  # fmt: skip
        expect_error([*args, "--classes", "a"], "is one of the inputs", capsys)
    assert (tmp_path / "m.onnx").read_bytes() == b"my model" and (tmp_path / "saved" / "config.json").read_text() == "{}"
    assert (tmp_path / "te.safetensors").read_bytes() == b"my weights"


def test_a_stream_of_images_reports_the_unreadable_one_and_exits_3(saved_model, folder_with_one_corrupt, tmp_path,
                                                                    capsys):  # fmt: skip
    js = tmp_path / "s.jsonl"
    assert main(["stream", str(folder_with_one_corrupt), "--classes", "person", "--model", saved_model, "--imgsz", "64",
                 "--json", str(js), "--no-progress"]) == 3  # fmt: skip
    assert f"1 skipped (unreadable): {folder_with_one_corrupt / 'img07b.jpg'}" in capsys.readouterr().err
    assert len(js.read_text().splitlines()) == 20


def test_the_json_inside_the_save_folder_never_replaces_an_annotated_image(saved_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(BUS), "--classes", "person", "--model", saved_model, "--imgsz", "64",
                 "--save", str(out), "--json", str(out / "bus.jpg")]) == 0  # fmt: skip
    records = json.loads((out / "bus.jpg").read_text())
    assert records[0]["saved"] == str(out / "bus_1.jpg") and cv2.imread(str(out / "bus_1.jpg")) is not None


def test_a_failed_stream_does_not_call_an_earlier_video_its_own(saved_model, tmp_path, monkeypatch, capsys):
    from ovdet.io import video as video_module

    clip = write_video(tmp_path / "clip.mp4", frames=4)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier video")
    monkeypatch.setattr(video_module, "_frame_count", lambda path: 0)  # the disk filled up: the new one cannot finish
    assert main(["stream", str(clip), "--classes", "person", "--model", saved_model, "--imgsz", "64", "--out", str(out),
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "does not play back" in err and "annotated video" not in err, err
    assert out.read_bytes() == b"an earlier video"
    expect_error(["stream", str(clip), "--classes", "person", "--fps", "inf", "--out", str(out)], "--fps must be", capsys)
