"""The stream loop behind ``ovdet stream``: read, detect, draw and write, each stage overlapping the next.

Frames are decoded on reader threads (:mod:`ovdet.sources`), the model runs on the calling thread, and drawing,
video encoding and JSON lines run on a writer thread fed through a small bounded queue, so memory stays constant.
Outputs are closed however the loop ends (last frame, error, Ctrl-C, or ``q`` in the window), so the annotated video
is always playable and the JSON lines file holds one line per frame written.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, DisplayError, OutputError
from ..fileio import JsonLinesWriter
from ..io.video import VideoFileWriter, check_fps, check_video_path
from ..model import OVDetector
from ..results import Result
from ..sources import FrameSource, Reconnect, SourceSpec, open_sources

__all__ = ["DEFAULT_FPS", "StreamStats", "check_display", "run_stream", "video_paths"]

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # frame rate of written videos when the source reports none (image folders, some cameras)


@dataclass
class StreamStats:
    """What a :func:`run_stream` call did.

    Attributes:
        frames: Frames detected (and written, when writing).
        seconds: Wall-clock time of the loop.
        dropped: Frames live sources dropped because inference was slower than they delivered.
        videos: The annotated videos written, one per source.
        json_lines: The JSON lines file written, if any.
        stopped: The user closed the window (or pressed ``q``/Esc) before the sources ended.
    """

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    videos: list[Path] = field(default_factory=list)
    json_lines: Path | None = None
    stopped: bool = False

    @property
    def fps(self) -> float:
        """Frames per second through the whole loop."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def video_paths(out: str | os.PathLike, num_sources: int) -> list[Path]:
    """Where the annotated videos go: ``out`` for one source; ``STEM-0.mp4``, ``STEM-1.mp4``, ... for several.

    Raises:
        ConfigError: ``out`` has a suffix OpenCV cannot write.
    """
    out = check_video_path(out)
    if num_sources == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(num_sources)]


_WINDOW_PROBE = "import cv2; cv2.namedWindow('ovdet-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"


def check_display() -> None:
    """Check that OpenCV can open a window here.

    Raises:
        DisplayError: no display (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``: SSH, containers, CI), a display that
            cannot be reached (a stale ``DISPLAY``, a closed X forwarding), or an OpenCV built without GUI support
            (``opencv-python-headless``). Checked before any window is opened, and the window itself is tried in a
            child process first, because Qt aborts the whole process (exit 134) when it cannot reach a display.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError(
            "--show needs a display, and there is none here (DISPLAY and WAYLAND_DISPLAY are unset: an SSH session, "
            "a container or CI?); drop --show and write the annotated video with --out FILE.mp4, or connect with "
            "ssh -X"
        )
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui and gui.group(1).upper() == "NONE":
        raise DisplayError(
            "--show needs OpenCV with GUI support, and this one has none (opencv-python-headless); run "
            "`pip uninstall opencv-python-headless && pip install opencv-python`, or write the annotated video with "
            "--out FILE.mp4"
        )
    import subprocess

    try:
        probe = subprocess.run([sys.executable, "-c", _WINDOW_PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise DisplayError("--show: opening a test window did not finish within 30 s; is the display responsive? "
                           "Drop --show and write the video with --out FILE.mp4") from None  # fmt: skip
    if probe.returncode != 0:
        why = next((line for line in probe.stderr.splitlines() if "display" in line.lower()), "")
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise DisplayError(
            f"--show cannot open a window on display {display!r}" + (f" ({why.strip()})" if why else "")
            + "; check DISPLAY (or the SSH X forwarding), or drop --show and write the video with --out FILE.mp4"
        )


class _OutputWriter:
    """Draws results and writes them (one annotated video per source, JSON lines) on its own thread.

    ``put`` blocks while the queue is full, so memory stays bounded when the disk or the encoder is the slow stage.
    An error on the writer thread is raised by the next ``put`` or by ``raise_error``.
    """

    def __init__(self, videos: dict[str, VideoFileWriter], json_file: JsonLinesWriter | None, size: int = 8):
        self._videos, self._json = videos, json_file
        self._queue: queue.Queue[tuple[Result, np.ndarray | None] | None] = queue.Queue(size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ovdet-writer", daemon=True)
        self._thread.start()

    def put(self, result: Result, annotated: np.ndarray | None = None) -> None:
        self._put((result, annotated))
        self.raise_error()

    def _put(self, item: tuple[Result, np.ndarray | None] | None) -> None:
        while self._thread.is_alive():  # a writer that died stops taking items; its error is raised by the caller
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                result, annotated = item
                video = self._videos.get(result.source or "")
                if video is not None:
                    video.write(annotated if annotated is not None else result.plot())
                if self._json is not None:
                    self._json.write(result.to_dict())  # whole lines, written at once: a stopped run keeps them
        except BaseException as e:  # raised on the main thread
            self._error = e

    def raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Write what is queued, then finalise the videos and the JSON lines file (raises nothing: it runs in
        ``finally`` blocks; see ``raise_error``)."""
        try:
            self._put(None)
            self._thread.join()
        finally:
            for video in self._videos.values():
                try:
                    video.close()
                except OutputError as e:  # a video that does not play back: raised by raise_error, after the rest
                    self._error = self._error or e
            if self._json is not None:
                self._json.close()


def _show(name: str, image: np.ndarray) -> bool:
    """Show a frame; ``False`` when the user pressed ``q`` or Esc or closed the window."""
    title = f"ovdet: {name}"
    cv2.imshow(title, image)
    key = cv2.waitKey(1) & 0xFF
    return key not in (ord("q"), 27) and cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1


def _open_json_lines(path: Path) -> JsonLinesWriter:
    try:
        return JsonLinesWriter(path, what="--json file")
    except OutputError:
        raise
    except OSError as e:
        raise ConfigError(f"cannot write detections to {path}: {e.strerror or e}; choose another --json path") from e


def _total_frames(sources: Sequence[FrameSource]) -> int | None:
    if any(s.live or not s.frame_count for s in sources):
        return None
    return sum(math.ceil(s.frame_count / s.vid_stride) for s in sources)


def run_stream(
    model: OVDetector,
    source: SourceSpec | Sequence[SourceSpec],
    *,
    out: str | os.PathLike | None = None,
    json_lines: str | os.PathLike | None = None,
    show: bool = False,
    conf: float = 0.25,
    iou: float = 0.7,
    imgsz: int | tuple[int, int] | None = None,
    max_det: int = 300,
    agnostic: bool = False,
    vid_stride: int = 1,
    reconnect: Reconnect | None = None,
    fps: float | None = None,
    progress: bool = True,
    on_result: Callable[[Result], None] | None = None,
) -> StreamStats:
    """Run ``model`` on every frame of one or more sources and write what it finds.

    Args:
        model: A detector with its classes set.
        source: What :meth:`OVDetector.stream` accepts: a video file, webcam index, stream URL, image folder or glob,
            or a list of these.
        out: Write an annotated video here (see :func:`video_paths` for several sources). For a video file with
            ``vid_stride=1`` it has the source's frame count and frame rate.
        json_lines: Write one JSON object per frame here (``Result.to_dict()``: source, frame index, timestamp,
            detections), flushed frame by frame.
        show: Show annotated frames in a window (``q`` or Esc stops); see :func:`check_display`.
        conf, iou, imgsz, max_det, agnostic, vid_stride, reconnect: As in :meth:`OVDetector.stream`.
        fps: Frame rate of the written videos; default: the source's divided by ``vid_stride``, else
            :data:`DEFAULT_FPS`. A live source that drops frames plays faster than real time at its nominal rate.
        progress: Show a progress bar with the live FPS (and dropped frames for live sources) on stderr.
        on_result: Called with each frame's result on the calling thread, as it comes (e.g. to print it).

    Returns:
        :class:`StreamStats`. Ctrl-C (``KeyboardInterrupt``) is re-raised after the outputs are closed.

    Raises:
        SourceError: a source cannot be opened, or a live one is lost for good (outputs are closed first).
        DisplayError: ``show`` where no window can be opened.
        ConfigError: an output path or frame rate that cannot be written.
    """
    if show:
        check_display()
    if fps is not None:
        check_fps(fps)
    if out is not None:
        check_video_path(out)
    sources = open_sources(source, vid_stride=vid_stride, reconnect=reconnect)
    try:
        names = [s.name for s in sources]
        if len(set(names)) < len(names):
            raise ConfigError(f"a source is given twice ({', '.join(names)}); give each source once")
        results = model.stream(
            sources, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, agnostic=agnostic,
            keep_images=out is not None or show,
        )  # fmt: skip
        stats = StreamStats(
            videos=video_paths(out, len(sources)) if out is not None else [],
            json_lines=Path(json_lines) if json_lines is not None else None,
        )
        videos = {
            s.name: VideoFileWriter(path, fps or (s.fps / s.vid_stride if s.fps else DEFAULT_FPS))
            for s, path in zip(sources, stats.videos)
        }
        writer = _OutputWriter(videos, _open_json_lines(stats.json_lines) if stats.json_lines else None)
    except BaseException:
        for s in sources:
            s.close()
        raise
    live = any(s.live for s in sources)
    start = time.perf_counter()
    try:
        desc = sources[0].name if len(sources) == 1 else f"{len(sources)} sources"
        with tqdm(total=_total_frames(sources), desc=desc, unit="frame", disable=not progress, file=sys.stderr) as bar:
            for result in results:
                annotated = None
                if show:
                    annotated = result.plot()
                    if not _show(result.source or desc, annotated):
                        stats.stopped = True
                        break
                writer.put(result, annotated)
                if on_result is not None:
                    on_result(result)
                stats.frames += 1
                bar.update()
                if live:
                    bar.set_postfix(dropped=sum(s.dropped for s in sources), refresh=False)
    finally:
        results.close()  # stops the readers
        writer.close()  # finalises the videos, whatever happened
        if show:
            cv2.destroyAllWindows()
        stats.seconds = time.perf_counter() - start
        stats.dropped = sum(s.dropped for s in sources)
    writer.raise_error()
    logger.info("%d frames in %.1f s (%.1f FPS), %d dropped", stats.frames, stats.seconds, stats.fps, stats.dropped)
    return stats
