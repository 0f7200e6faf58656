import functools
import logging
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ovdet.errors import ConfigError, SourceError
from ovdet.sources import LiveSource, Reconnect, VideoFileSource, open_source
from tests.media import MJPEGCamera, read_video, write_video

FAST_RECONNECT = Reconnect(attempts=5, backoff=0.02, max_backoff=0.1, open_timeout=5, read_timeout=5)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "shapes.mp4", frames=20, fps=12.5)


def test_a_video_file_gives_every_frame_in_order_with_decoder_timestamps(video):
    decoded, _, _ = read_video(video)
    with open_source(video) as source:
        assert isinstance(source, VideoFileSource) and not source.live
        assert (source.fps, source.frame_count, source.size) == (12.5, 20, (128, 96))
        frames = list(source)
    assert [f.index for f in frames] == list(range(20))
    assert [f.timestamp for f in frames] == pytest.approx([i / 12.5 for i in range(20)])
    assert all(f.source == str(video) for f in frames)
    assert all(np.array_equal(f.image, d) for f, d in zip(frames, decoded))


def test_vid_stride_keeps_every_nth_frame_with_its_source_index(video):
    frames = list(open_source(video, vid_stride=3))
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert frames[-1].timestamp == pytest.approx(18 / 12.5)


def test_a_slow_consumer_of_a_file_loses_no_frame(video):
    source = open_source(video)
    indices = []
    for frame in source:  # the reader fills its buffer, then waits for the consumer
        indices.append(frame.index)
        time.sleep(0.01)
    assert indices == list(range(20)) and source.dropped == 0


def test_leaving_the_loop_stops_the_reader_and_releases_the_file(video):
    source = open_source(video)
    for frame in source:
        if frame.index == 2:
            break
    source._thread.join(2)
    assert not source._thread.is_alive() and source._released
    with pytest.raises(RuntimeError, match="already iterated or closed"):
        next(iter(source))


def test_a_truncated_file_stops_cleanly_with_what_was_read_and_a_warning(tmp_path, caplog):
    full = write_video(tmp_path / "full.avi", frames=20)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="ovdet"):
        frames = list(open_source(cut))
    assert 0 < len(frames) < 20 and [f.index for f in frames] == list(range(len(frames)))
    assert f"ended after {len(frames)} of the 20 frames" in caplog.text and "truncated" in caplog.text


def test_an_mp4_cut_before_its_index_is_one_clear_error(tmp_path, video):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(SourceError, match=r"cannot open video .*cut.mp4.*damaged.*re-encode"):
        open_source(cut)


def test_a_video_served_over_http_is_read_like_a_file(video):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(video.parent))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = open_source(f"http://127.0.0.1:{server.server_address[1]}/{video.name}")
        assert isinstance(source, VideoFileSource) and source.frame_count == 20
        assert [f.index for f in source] == list(range(20))
    finally:
        server.shutdown()
        server.server_close()


def test_an_mjpeg_camera_is_a_live_source_with_wall_clock_timestamps():
    with MJPEGCamera(fps=50) as camera, open_source(camera.url, reconnect=FAST_RECONNECT) as source:
        assert isinstance(source, LiveSource) and source.live and source.frame_count is None
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == 5:
                break
    assert frames[0].image.shape == (64, 96, 3)
    times = [f.timestamp for f in frames]
    assert times == sorted(times) and times[0] >= 0


def test_a_camera_that_dies_is_reconnected_with_backoff_and_frames_resume(caplog):
    # the first connection is cut after 5 frames, the next two attempts get HTTP 503, the third is served again
    with MJPEGCamera(fps=50, cut_after=5, refuse=2) as camera, caplog.at_level(logging.WARNING, logger="ovdet"):
        indices = []
        for frame in open_source(camera.url, reconnect=FAST_RECONNECT):
            indices.append(frame.index)
            if len(indices) == 12:
                break
    assert indices == sorted(set(indices)) and camera.connections >= 4
    messages = [r.getMessage() for r in caplog.records]
    attempts = [m for m in messages if "stopped delivering frames; reconnecting in" in m]
    assert [m.split("(")[-1] for m in attempts[:3]] == ["attempt 1 of 5)", "attempt 2 of 5)", "attempt 3 of 5)"]
    assert "reconnecting in 0.02 s" in attempts[0] and "reconnecting in 0.04 s" in attempts[1]
    assert any("reconnected, frames resume" in m for m in messages)


def test_a_camera_that_stays_down_ends_the_stream_with_a_clear_error():
    camera = MJPEGCamera(fps=50)
    source = open_source(camera.url, reconnect=Reconnect(attempts=2, backoff=0.01))
    received = 0
    with pytest.raises(SourceError, match="stopped delivering frames and did not come back after 2 reconnect attempts"):
        for _ in source:
            received += 1
            if received == 3:
                camera.stop()  # connections are refused from now on
    assert received >= 3


def test_a_slow_consumer_of_a_live_source_gets_the_newest_frames_and_drops_are_counted():
    with MJPEGCamera(fps=200) as camera, open_source(camera.url, reconnect=FAST_RECONNECT) as source:
        indices = []
        for frame in source:
            indices.append(frame.index)
            time.sleep(0.1)  # inference far slower than the camera
            if len(indices) == 4:
                break
        assert source.dropped > 0
    assert indices == sorted(indices) and indices[-1] - indices[0] > 3  # stale frames were skipped


def test_credentials_never_appear_in_messages():
    with pytest.raises(SourceError) as info:
        open_source("rtsp://admin:hunter2@127.0.0.1:1/stream", reconnect=FAST_RECONNECT)
    assert "hunter2" not in str(info.value) and "rtsp://admin:***@127.0.0.1:1/stream" in str(info.value)


def test_reconnect_backoff_doubles_up_to_the_cap_and_rejects_bad_values():
    policy = Reconnect(backoff=0.5, max_backoff=3)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1, 2, 3, 3]
    with pytest.raises(ConfigError, match="attempts must be >= 0"):
        Reconnect(attempts=-1)
    with pytest.raises(ConfigError, match="backoff must be"):
        Reconnect(backoff=float("nan"))
