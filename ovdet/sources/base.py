"""The threaded reader behind every frame source: a bounded buffer between a decoding thread and the consumer.

A finite source's reader waits while the buffer is full, so every frame is delivered; a live source's reader never
waits: it evicts the oldest buffered frame and counts it, so the consumer always gets a recent frame.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError

__all__ = ["Frame", "FrameSource", "iter_rounds"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame.

    Attributes:
        image: ``(H, W, 3)`` BGR ``uint8``.
        source: Name of the source it came from (the path or URL as given, credentials masked; ``"0"`` for webcam 0).
        index: Index of the frame in its source, counting frames skipped by ``vid_stride`` or dropped.
        timestamp: Seconds since the source started: the decoder's timestamp for video files, wall-clock time for
            live sources, ``None`` for image sequences.
        path: The image file, for image sequences.
    """

    image: np.ndarray
    source: str
    index: int
    timestamp: float | None
    path: str | None = None


class _FrameBuffer:
    """A bounded hand-over between the reader thread and the consumer.

    ``drop_oldest=False``: ``put`` waits for room (every frame is delivered). ``drop_oldest=True``: ``put`` never
    waits; it evicts the oldest frame and counts it in :attr:`dropped`.
    """

    def __init__(self, size: int, *, drop_oldest: bool):
        assert size >= 1
        self.size, self.drop_oldest = size, drop_oldest
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._closed = False  # the consumer is gone
        self._finished = False  # the reader is done
        self._error: BaseException | None = None

    def put(self, frame: Frame) -> bool:
        """Add a frame; returns ``False`` once the consumer has closed the buffer (the reader should stop)."""
        with self._cond:
            while not self.drop_oldest and len(self._items) >= self.size and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """Reader side: no more frames will come (``error``: why the reader failed)."""
        with self._cond:
            self._finished, self._error = True, error
            self._cond.notify_all()

    def get(self) -> Frame | None:
        """Consumer side: the next frame, or ``None`` at the end. Re-raises the reader's error after the last frame."""
        with self._cond:
            while not self._items and not self._finished:
                self._cond.wait()
            if self._items:
                frame = self._items.popleft()
                self._cond.notify_all()
                return frame
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    def close(self) -> None:
        """Consumer side: stop; buffered frames are discarded and the reader's next ``put`` returns ``False``."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


class FrameSource:
    """Base class: decodes frames on a reader thread into a bounded buffer; iterate it once to get :class:`Frame`\\ s.

    Iterating starts the reader; leaving the loop (or :meth:`close`, or the ``with`` block) stops it and releases the
    device or file. Subclasses implement :meth:`_read`, which runs on the reader thread.

    Attributes:
        name: The source as given (path, URL with credentials masked, webcam index).
        live: Whether stale frames are dropped (live sources) or every frame is delivered (files, image sequences).
        fps: Frames per second the source reports, or ``None`` when unknown.
        frame_count: Frames in a finite source (as its container declares), ``None`` for live sources.
        size: ``(width, height)`` of the frames when known up front, else ``None``.
        vid_stride: Only every ``vid_stride``-th frame is delivered.
        skipped: Inputs that could not be read and were left out (an unreadable image of a folder), as they are met.
    """

    live = False

    def __init__(self, name: str, *, vid_stride: int = 1, buffer_size: int = 4):
        if not isinstance(vid_stride, int) or vid_stride < 1:
            raise ConfigError(f"vid_stride must be an integer >= 1, got {vid_stride!r}")
        self.name, self.vid_stride = name, vid_stride
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.size: tuple[int, int] | None = None
        self.skipped: list[str] = []  # inputs that could not be read and were left out (an image of a folder)
        self._buffer = _FrameBuffer(buffer_size, drop_oldest=self.live)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_lock = threading.Lock()
        self._released = False

    @property
    def dropped(self) -> int:
        """Frames decoded but dropped because the consumer fell behind (always 0 for finite sources)."""
        return self._buffer.dropped

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps}, frame_count={self.frame_count})"

    def __iter__(self) -> Iterator[Frame]:
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError(f"{self!r} was already iterated or closed; open the source again to re-read it")
        self._thread = threading.Thread(target=self._run, name=f"ovdet-reader[{self.name}]", daemon=True)
        self._thread.start()
        try:
            while (frame := self._buffer.get()) is not None:
                yield frame
        finally:
            self.close()

    def close(self, timeout: float = 1.0) -> None:
        """Stop the reader and release the source. Waits up to ``timeout`` s for a reader blocked in a network read;
        it then releases the source itself when the read returns."""
        self._stop.set()
        self._buffer.close()
        if self._thread is None:
            self._release_once()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            self._read(self._emit)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._buffer.finish(e)
        else:
            self._buffer.finish()
        finally:
            self._release_once()

    def _emit(self, image: np.ndarray, index: int, timestamp: float | None, path: str | None = None) -> bool:
        """Hand one frame to the consumer; ``False`` means stop reading."""
        return not self._stop.is_set() and self._buffer.put(Frame(image, self.name, index, timestamp, path))

    def _read(self, emit: Callable[..., bool]) -> None:
        """Decode frames and call ``emit(image, index, timestamp, path=None)`` until the end or until it returns
        ``False``. Runs on the reader thread; an exception raised here reaches the consumer."""
        raise NotImplementedError

    def _release_once(self) -> None:
        with self._release_lock:
            if not self._released:
                self._released = True
                self._release()

    def _release(self) -> None:
        """Free the device or file (called once)."""


def iter_rounds(sources: Sequence[FrameSource]) -> Iterator[list[Frame]]:
    """Read several sources in turn: each round holds the next frame of every source that has not ended.

    Live sources keep dropping stale frames while a round waits for a slower source, so each stays current. All
    sources are closed when the iteration ends, fails or is abandoned.
    """
    iterators = [iter(source) for source in sources]
    try:
        while iterators:
            frames = []
            for it in list(iterators):
                frame = next(it, None)
                if frame is None:
                    iterators.remove(it)
                else:
                    frames.append(frame)
            if frames:
                yield frames
    finally:
        for source in sources:
            source.close()

