"""Generated media for stream tests: small videos of moving shapes, and an MJPEG-over-HTTP camera on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


def shapes_frame(i: int, size: tuple[int, int] = (128, 96)) -> np.ndarray:
    """Frame ``i`` of a scene with a red disc and a green square moving across a grey background (BGR, ``(h, w, 3)``)."""
    w, h = size
    image = np.full((h, w, 3), 60, np.uint8)
    cv2.circle(image, (int(10 + 3 * i) % w, h // 3), max(h // 8, 4), (0, 0, 255), -1)
    x = int(w - 20 - 2 * i) % w
    cv2.rectangle(image, (x, h // 2), (x + h // 5, h // 2 + h // 5), (0, 200, 0), -1)
    return image


def write_video(path: Path, frames: int = 24, fps: float = 12.0, size: tuple[int, int] = (128, 96)) -> Path:
    """Write ``frames`` frames of :func:`shapes_frame` with cv2.VideoWriter (codec by suffix: .mp4, .avi, .mkv)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), fps, size)
    assert writer.isOpened(), f"this OpenCV cannot write {path.suffix}"
    for i in range(frames):
        writer.write(shapes_frame(i, size))
    writer.release()
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], float, int]:
    """``(frames, fps, declared frame count)`` of a video, read back with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps, count


class MJPEGCamera:
    """An IP camera stand-in: ``multipart/x-mixed-replace`` JPEG frames over HTTP on 127.0.0.1, served by a thread.

    Args:
        fps: Frames per second sent to each client.
        cut_after: The first connection is closed after this many frames (the camera "dies"); ``None`` never.
        refuse: After the cut, this many connection attempts are answered ``503`` (the camera is still down).

    ``stop()`` shuts the server: further connections are refused. Counters: ``frames_sent``, ``connections``.
    """

    def __init__(self, *, fps: float = 50.0, cut_after: int | None = None, refuse: int = 0):
        self.fps, self.cut_after, self.refuse = fps, cut_after, refuse
        self.frames_sent = 0
        self.connections = 0
        self._stopped = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                camera.connections += 1
                if camera.connections > 1 and camera.refuse > 0:
                    camera.refuse -= 1
                    self.send_error(503, "camera down")
                    return
                limit = camera.cut_after if camera.connections == 1 else None
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                while not camera._stopped.is_set() and (limit is None or sent < limit):
                    ok, jpeg = cv2.imencode(".jpg", shapes_frame(camera.frames_sent, (96, 64)))
                    part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    try:
                        self.wfile.write(part + jpeg.tobytes() + b"\r\n")
                    except OSError:  # the client went away
                        return
                    camera.frames_sent += 1
                    sent += 1
                    time.sleep(1 / camera.fps)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/video.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MJPEGCamera:
        return self

    def __exit__(self, *exc) -> None:
        if not self._stopped.is_set():
            self.stop()
