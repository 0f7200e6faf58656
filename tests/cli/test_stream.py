"""``ovdet stream`` end to end (fresh processes) and its one-line errors (in process)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from ovdet.cli.main import main
from tests.conftest import run_cli
from tests.media import MJPEGCamera, read_video, write_video


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_encoder):
    import torch

    import ovdet
    from tests.conftest import make_scorable

    torch.manual_seed(0)
    model = make_scorable(ovdet.build("ovdet-n", tiny_encoder)).set_classes(["person"])
    return str(model.save(tmp_path_factory.mktemp("model") / "model"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("cli-stream") / "shapes.mp4", frames=12, fps=12.0)


def test_stream_a_video_file_to_an_annotated_video_and_json_lines(saved_model, video, tmp_path):
    proc = run_cli(
        "stream", str(video), "--classes", "red disc, green square", "--model", saved_model, "--imgsz", "64",
        "--conf", "0.4", "--out", str(tmp_path / "out.mp4"), "--json", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frames, fps, count = read_video(tmp_path / "out.mp4")
    assert (len(frames), count, fps) == (12, 12, 12.0)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in records] == list(range(12))
    assert "12/12" in proc.stderr  # the progress bar knows the total
    assert "12 frames in" in proc.stderr and f"annotated video: {tmp_path / 'out.mp4'}" in proc.stderr


# `python -m ovdet` with Python's own Ctrl-C handling: a runner started in the background (nohup, `cmd &`, some CI
# agents) ignores SIGINT and its children inherit that, so the CLI would never see the test's Ctrl-C
AS_IN_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('ovdet', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_on_a_live_stream_exits_130_with_a_playable_video(saved_model, tmp_path):
    out, lines = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    with MJPEGCamera(fps=30) as camera:  # never ends by itself
        proc = subprocess.Popen(
            [sys.executable, "-c", AS_IN_A_TERMINAL, "stream", camera.url, "--classes", "person", "--model", saved_model,
             "--imgsz", "64", "--out", str(out), "--json", str(lines)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (lines.exists() and len(lines.read_text().splitlines()) >= 3):
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "no frames were processed"
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "ovdet stream: interrupted" in stderr and "annotated video (closed, playable)" in stderr
    written = len(read_video(out)[0])
    assert written >= 3 and written == len(lines.read_text().splitlines())


def test_stream_errors_are_one_line_before_the_model_loads(video, tmp_path, capsys, monkeypatch):
    def expect(args, message):
        assert main(["stream", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("ovdet stream: error:") and message in err[-1], err

    out = ["--out", str(tmp_path / "o.mp4")]
    expect([str(tmp_path / "missing.mp4"), "--classes", "a", *out], f"video file not found: {tmp_path / 'missing.mp4'}")
    expect(["99", "--classes", "a", *out], "cannot open webcam 99")
    expect(["rtsp://127.0.0.1:1/cam", "--classes", "a", *out], "cannot open stream rtsp://127.0.0.1:1/cam")
    expect([str(video), "--classes", "a", "--out", str(tmp_path / "o.gif")], "cannot write a video to")
    expect([str(video), "--classes", " , ", *out], "class list is empty")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    expect([str(video), "--classes", "a", "--show"], "--show needs a display")


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["stream", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "ovdet stream 0 --classes" in out and "--reconnect-attempts" in out
