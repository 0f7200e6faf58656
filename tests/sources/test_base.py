import threading

import numpy as np
import pytest

from ovdet.errors import ConfigError, SourceError
from ovdet.sources import FrameSource, iter_rounds, open_source
from ovdet.sources.base import _FrameBuffer
from tests.media import write_video


class CountingSource(FrameSource):
    """A finite source of ``n`` tiny frames, or a live one (drops stale frames) when ``live=True``."""

    def __init__(self, name, n, *, live=False, fail_after=None, buffer_size=2):
        self.live = live
        super().__init__(name, buffer_size=buffer_size)
        self.n, self.fail_after = n, fail_after
        self.released = threading.Event()

    def _read(self, emit):
        for i in range(self.n):
            if i == self.fail_after:
                raise SourceError(f"{self.name} broke")
            if not emit(np.full((4, 4, 3), i, np.uint8), i, i / 10):
                return

    def _release(self):
        self.released.set()


def test_a_finite_buffer_blocks_instead_of_dropping_and_a_live_one_drops_the_oldest():
    finite = CountingSource("file", 50)
    frames = list(finite)
    assert [f.index for f in frames] == list(range(50)) and finite.dropped == 0

    buffer = _FrameBuffer(2, drop_oldest=True)
    for i in range(5):
        assert buffer.put(i)
    buffer.finish()
    assert [buffer.get(), buffer.get(), buffer.get()] == [3, 4, None] and buffer.dropped == 3


def test_a_reader_error_reaches_the_consumer_after_the_frames_before_it():
    source = CountingSource("cam", 10, fail_after=3)
    seen = []
    with pytest.raises(SourceError, match="cam broke"):
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1, 2] and source.released.wait(2)


def test_rounds_take_one_frame_per_source_and_go_on_with_those_left():
    a, b = CountingSource("a", 3), CountingSource("b", 1)
    rounds = [[(f.source, f.index) for f in r] for r in iter_rounds([a, b])]
    assert rounds == [[("a", 0), ("b", 0)], [("a", 1)], [("a", 2)]]
    assert a.released.is_set() and b.released.is_set()


def test_abandoning_rounds_closes_every_source():
    a, b = CountingSource("a", 100), CountingSource("b", 100)
    rounds = iter_rounds([a, b])
    next(rounds)
    rounds.close()
    assert a.released.wait(2) and b.released.wait(2)


def test_closing_a_source_that_was_never_read_releases_it(tmp_path):
    source = open_source(write_video(tmp_path / "v.mp4", frames=3))
    source.close()
    assert source._released


@pytest.mark.parametrize("stride", [0, -2, 1.5])
def test_vid_stride_must_be_a_positive_integer(tmp_path, stride):
    with pytest.raises(ConfigError, match="vid_stride must be an integer >= 1"):
        open_source(write_video(tmp_path / "v.mp4", frames=2), vid_stride=stride)
