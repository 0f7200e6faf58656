"""``run_stream``: annotated videos and JSON lines from files, live streams and several sources."""

import json

import pytest
import torch

import ovdet
from ovdet.engine import stream as engine_stream
from ovdet.engine.stream import run_stream, video_paths
from ovdet.errors import DisplayError, SourceError
from ovdet.sources import Reconnect
from tests.conftest import make_scorable
from tests.media import MJPEGCamera, read_video, write_video

IMGSZ = 64


@pytest.fixture(scope="module")
def model(tiny_encoder):
    torch.manual_seed(0)
    return make_scorable(ovdet.build("ovdet-n", tiny_encoder)).set_classes(["red disc", "green square"])


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("engine") / "shapes.mp4", frames=16, fps=15.0)


def json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_video_file_gives_an_annotated_video_with_the_same_frames_and_fps_and_json_lines(model, video, tmp_path):
    stats = run_stream(model, video, out=tmp_path / "out.mp4", json_lines=tmp_path / "d.jsonl", imgsz=IMGSZ,
                       conf=0.3, progress=False)  # fmt: skip
    frames, fps, count = read_video(tmp_path / "out.mp4")
    source_frames, _, _ = read_video(video)
    assert (stats.frames, len(frames), count, fps) == (16, 16, 16, 15.0)
    assert frames[0].shape == source_frames[0].shape
    assert stats.videos == [tmp_path / "out.mp4"] and stats.dropped == 0 and stats.fps > 0
    records = json_lines(tmp_path / "d.jsonl")
    assert [r["frame_index"] for r in records] == list(range(16))
    assert records[15]["timestamp"] == pytest.approx(1.0) and records[0]["source"] == str(video)
    assert all(d["label"] in ("red disc", "green square") and d["score"] >= 0.3 for r in records for d in r["detections"])
    assert any(r["detections"] for r in records)


def test_vid_stride_writes_fewer_frames_at_a_lower_rate_keeping_the_duration(model, video, tmp_path):
    run_stream(model, video, out=tmp_path / "out.avi", vid_stride=4, imgsz=IMGSZ, progress=False)
    frames, fps, _ = read_video(tmp_path / "out.avi")
    assert (len(frames), fps) == (4, 3.75)


def test_ctrl_c_closes_the_outputs_so_the_video_stays_playable(model, video, tmp_path, monkeypatch):
    real_stream = type(model).stream

    def interrupted_stream(self, *args, **kwargs):
        def gen():
            for i, result in enumerate(real_stream(self, *args, **kwargs)):
                if i == 5:
                    raise KeyboardInterrupt
                yield result

        return gen()

    monkeypatch.setattr(type(model), "stream", interrupted_stream)
    with pytest.raises(KeyboardInterrupt):
        run_stream(model, video, out=tmp_path / "out.mp4", json_lines=tmp_path / "d.jsonl", imgsz=IMGSZ,
                   progress=False)  # fmt: skip
    assert len(read_video(tmp_path / "out.mp4")[0]) == 5
    assert len(json_lines(tmp_path / "d.jsonl")) == 5


def test_several_sources_get_one_video_each(model, video, tmp_path):
    short = write_video(tmp_path / "short.avi", frames=3, fps=6.0)
    stats = run_stream(model, [video, short], out=tmp_path / "out.mp4", imgsz=IMGSZ, progress=False)
    assert stats.videos == video_paths(tmp_path / "out.mp4", 2) == [tmp_path / "out-0.mp4", tmp_path / "out-1.mp4"]
    assert [read_video(p)[1:] for p in stats.videos] == [(15.0, 16), (6.0, 3)]


def test_a_lost_live_source_is_an_error_after_the_outputs_are_closed(model, tmp_path):
    with MJPEGCamera(fps=30, cut_after=8) as camera, pytest.raises(SourceError, match="reconnecting is off"):
        run_stream(model, camera.url, out=tmp_path / "live.mp4", json_lines=tmp_path / "d.jsonl", imgsz=IMGSZ,
                   reconnect=Reconnect(attempts=0), fps=10, progress=False)  # fmt: skip
    frames, fps, _ = read_video(tmp_path / "live.mp4")
    assert 0 < len(frames) <= 8 and len(frames) == len(json_lines(tmp_path / "d.jsonl")) and fps == 10


def test_show_without_a_display_is_a_clear_error(model, video, monkeypatch):
    monkeypatch.setattr(engine_stream.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayError, match="--show needs a display.*--out FILE.mp4"):
        run_stream(model, video, show=True, progress=False)


def test_show_with_a_headless_opencv_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(engine_stream.cv2, "getBuildInformation", lambda: "  GUI:                           NONE\n")
    with pytest.raises(DisplayError, match="pip install opencv-python"):
        engine_stream.check_display()


def test_a_video_the_disk_could_not_hold_is_an_error_not_a_success(model, video, tmp_path, monkeypatch):
    from ovdet.errors import OutputError
    from ovdet.io import video as video_module

    monkeypatch.setattr(video_module, "_frame_count", lambda path: 0)  # what a full disk leaves: no MP4 index
    with pytest.raises(OutputError, match="does not play back its 16 frames"):
        run_stream(model, video, out=tmp_path / "out.mp4", json_lines=tmp_path / "d.jsonl", imgsz=IMGSZ,
                   progress=False)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"] and len(json_lines(tmp_path / "d.jsonl")) == 16
