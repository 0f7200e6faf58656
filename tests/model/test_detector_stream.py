"""``OVDetector.stream``: frames from video sources through ``detect``, tagged with where they came from."""

import numpy as np
import pytest
import torch

from ovdet.errors import SourceError, VocabularyError
from ovdet.sources import open_source
from tests.media import read_video, write_video

IMGSZ = 64


@pytest.fixture(scope="module")
def model(tiny_encoder):  # streaming leaves the model as it was: one per module keeps the tests fast
    import ovdet
    from tests.conftest import make_scorable

    torch.manual_seed(0)
    return make_scorable(ovdet.build("ovdet-n", tiny_encoder)).set_classes(["red disc", "green square"])


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("stream") / "shapes.mp4", frames=12, fps=12.0)


def test_stream_gives_one_result_per_frame_equal_to_detect_on_the_decoded_frames(model, video):
    results = list(model.stream(video, imgsz=IMGSZ, conf=0.3))
    frames, _, _ = read_video(video)
    expected = [model.detect([frame], imgsz=IMGSZ, conf=0.3)[0] for frame in frames]  # one frame per forward
    assert [r.frame_index for r in results] == list(range(12))
    assert [r.timestamp for r in results] == pytest.approx([i / 12 for i in range(12)])
    assert {r.source for r in results} == {str(video)} and all(r.image is None for r in results)
    assert sum(len(r) for r in results) > 0
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.class_ids, want.class_ids)


def test_stream_with_vid_stride_and_kept_images(model, video):
    results = list(model.stream(video, imgsz=IMGSZ, vid_stride=4, keep_images=True))
    assert [r.frame_index for r in results] == [0, 4, 8]
    assert all(r.image.shape == (96, 128, 3) for r in results)
    assert results[1].plot().shape == (96, 128, 3)


def test_several_sources_are_read_in_turn_and_tagged(model, video, tmp_path):
    short = write_video(tmp_path / "short.avi", frames=3)
    tags = [(r.source, r.frame_index) for r in model.stream([video, short], imgsz=IMGSZ)]
    assert tags[:6] == [(str(video), 0), (str(short), 0), (str(video), 1), (str(short), 1), (str(video), 2),
                        (str(short), 2)]  # fmt: skip
    assert tags[6:] == [(str(video), i) for i in range(3, 12)]


def test_a_bad_source_fails_at_the_call_not_at_the_first_frame(model, tmp_path):
    with pytest.raises(SourceError, match="video file not found"):
        model.stream(tmp_path / "missing.mp4")


def test_stream_needs_classes(tiny_model, video):
    with pytest.raises(VocabularyError, match="set_classes"):
        tiny_model.stream(video)


def test_abandoning_the_stream_closes_its_sources(model, video):
    source = open_source(video)
    results = model.stream(source, imgsz=IMGSZ)
    next(results)
    results.close()
    source._thread.join(2)
    assert source._released
