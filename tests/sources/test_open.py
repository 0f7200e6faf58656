import cv2
import numpy as np
import pytest

from ovdet.errors import SourceError
from ovdet.sources import ImageSequenceSource, VideoFileSource, open_source, open_sources
from tests.media import write_video


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.mp4", "video file not found: missing.mp4"),
        (99, "cannot open webcam 99: no camera with that index"),
        ("99", "cannot open webcam 99"),
        ("rtsp://127.0.0.1:1/stream", "cannot open stream rtsp://127.0.0.1:1/stream: the host is unreachable"),
        ("http://127.0.0.1:1/video.mjpg", "check that the URL plays in ffplay or VLC"),
        ({"a": 1}, "cannot stream from a dict; give a video file, a webcam index"),
        ([], "no source given"),
    ],
)
def test_a_source_that_cannot_be_opened_is_one_clear_error(spec, message):
    with pytest.raises(SourceError, match=message):
        open_sources(spec)


def test_a_file_that_is_not_a_video_is_named(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(SourceError, match=f"cannot open video {bad}"):
        open_source(bad)


def test_an_empty_folder_says_what_it_looked_for(tmp_path):
    with pytest.raises(SourceError, match="no images in folder"):
        open_source(tmp_path)


def test_specs_pick_their_reader(tmp_path):
    video = write_video(tmp_path / "v.avi", frames=2)
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    sources = open_sources([video, str(image)])
    assert [type(s) for s in sources] == [VideoFileSource, ImageSequenceSource]
    assert open_source(sources[0]) is sources[0]
    for s in sources:
        s.close()


def test_files_whose_names_look_like_globs_are_those_files(tmp_path):
    video = write_video(tmp_path / "clip [1].avi", frames=2)
    image = tmp_path / "still [1].png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    sources = open_sources([str(video), str(image)])
    assert [type(s) for s in sources] == [VideoFileSource, ImageSequenceSource] and sources[1].frame_count == 1
    for s in sources:
        s.close()


def test_when_one_source_fails_the_others_are_closed(tmp_path):
    good = open_source(write_video(tmp_path / "v.mp4", frames=2))
    with pytest.raises(SourceError):
        open_sources([good, tmp_path / "missing.mp4"])
    assert good._released
