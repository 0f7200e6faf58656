import pytest

from ovdet.errors import ConfigError
from ovdet.io.video import VideoFileWriter
from tests.media import read_video, shapes_frame


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])
def test_written_videos_read_back_with_their_frame_count_fps_and_size(tmp_path, suffix):
    path = tmp_path / "sub" / f"out{suffix}"
    with VideoFileWriter(path, fps=12.5) as writer:
        for i in range(7):
            writer.write(shapes_frame(i))
    frames, fps, count = read_video(path)
    assert (len(frames), count, fps) == (7, 7, 12.5) and frames[0].shape == (96, 128, 3)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_an_interrupted_writer_still_leaves_a_playable_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), VideoFileWriter(path, fps=10) as writer:
        for i in range(10):
            if i == 4:
                raise KeyboardInterrupt
            writer.write(shapes_frame(i))
    assert len(read_video(path)[0]) == 4


def test_nothing_is_written_without_frames_and_until_closed(tmp_path):
    path = tmp_path / "out.mp4"
    VideoFileWriter(path, fps=10).close()
    assert not path.exists()
    writer = VideoFileWriter(path, fps=10)
    writer.write(shapes_frame(0))
    assert not path.exists()  # an MP4 is only playable once closed: it appears then, complete
    writer.close()
    assert path.exists()


def test_frames_of_another_size_are_resized_to_the_first(tmp_path):
    path = tmp_path / "out.avi"
    with VideoFileWriter(path, fps=5) as writer:
        writer.write(shapes_frame(0, (64, 48)))
        writer.write(shapes_frame(1, (128, 96)))
    frames, _, _ = read_video(path)
    assert [f.shape for f in frames] == [(48, 64, 3)] * 2


def test_unsupported_suffix_and_fps_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"use one of \.mp4, .*\.avi as its suffix"):
        VideoFileWriter(tmp_path / "out.gif", fps=10)
    with pytest.raises(ConfigError, match="frame rate must be > 0"):
        VideoFileWriter(tmp_path / "out.mp4", fps=0)


class _DiskFullAtRelease:
    """An OpenCV writer on a disk that fills up: OpenCV reports nothing, the index is never written."""

    def __init__(self, writer, path):
        self.writer, self.path = writer, path

    def write(self, image):
        self.writer.write(image)

    def release(self):
        self.writer.release()
        with open(self.path, "r+b") as f:
            f.truncate(4096)  # what a full disk left: the first blocks, no MP4 index


def test_a_video_that_does_not_play_back_is_an_error_and_never_replaces_the_file(tmp_path):
    from ovdet.errors import OutputError

    path = tmp_path / "out.mp4"
    path.write_bytes(b"an earlier video")
    writer = VideoFileWriter(path, fps=10)
    for i in range(30):
        writer.write(shapes_frame(i))
    writer._writer = _DiskFullAtRelease(writer._writer, writer._tmp)
    with pytest.raises(OutputError, match="does not play back its 30 frames"):
        writer.close()
    assert path.read_bytes() == b"an earlier video"  # not replaced by an unplayable file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left


@pytest.mark.parametrize("fps", [float("inf"), float("nan"), 70000.0])
def test_frame_rates_no_video_can_hold_are_refused_before_writing(tmp_path, fps):
    # OpenCV spins forever on inf and fails to open above MPEG-4's 65,535 ticks a second
    with pytest.raises(ConfigError, match="at most 65535"):
        VideoFileWriter(tmp_path / "out.mp4", fps=fps)
