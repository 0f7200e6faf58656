"""``ovdet stream``: detect free-text classes in videos, webcams, RTSP/HTTP streams or image folders, frame by frame."""

from __future__ import annotations

import argparse
import os
import sys

from .common import add_model_args, parse_classes, positive_int, probability, resolve_model

HELP = "detect free-text classes in a video, webcam, stream URL or image folder"
EPILOG = """examples:
  ovdet stream clip.mp4 --classes "person, dog" --out runs/clip.mp4 --json runs/clip.jsonl
  ovdet stream 0 --classes "person" --show                          # webcam 0
  ovdet stream rtsp://user:pass@192.168.1.10/stream1 --classes "car" --out cam.mp4 --reconnect-attempts inf
  ovdet stream frames/ --classes "cat" --out frames.mp4 --fps 25    # an image folder played as a video
"""


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def attempts(text: str) -> int | None:
    if text.strip().lower() in ("inf", "infinite", "forever"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'inf', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'inf', got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stream", help=HELP, description=HELP, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "source", nargs="+",
        help="a video file, a webcam index (0), an rtsp:// rtmp:// http(s):// URL, a folder or glob of images; "
        "several sources are read in turn",
    )  # fmt: skip
    p.add_argument("--classes", help='comma-separated class names, e.g. "person,red backpack"')
    p.add_argument("--classes-file", help="a text file with one class name per line")
    add_model_args(p)
    p.add_argument("--out", metavar="FILE.mp4", help="write the annotated video (.mp4, .avi, .mkv, .mov); with several "
                   "sources, FILE-0.mp4, FILE-1.mp4, ...")  # fmt: skip
    p.add_argument("--json", metavar="FILE", help="write each frame's detections to FILE as JSON lines")
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (q or Esc stops)")
    p.add_argument("--conf", type=probability, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=probability, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="inference size (default: the model's)")
    p.add_argument("--max-det", type=positive_int, default=300, help="maximum detections per frame")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--vid-stride", type=positive_int, default=1, help="use every N-th frame (default 1: all)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the written video (default: the source's "
                   "divided by --vid-stride; 30 for image folders)")  # fmt: skip
    p.add_argument("--reconnect-attempts", type=attempts, default=5, metavar="N",
                   help="live sources: reconnect attempts before giving up, or 'inf' (default 5)")  # fmt: skip
    p.add_argument("--reconnect-delay", type=non_negative_float, default=1.0, metavar="SECONDS",
                   help="live sources: wait before the first reconnect attempt, doubling up to 30 s (default 1)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _quiet_opencv() -> None:
    # OpenCV and FFmpeg print their own warnings for every failed open or damaged packet; ovdet reports those in
    # one line of its own, so the command line keeps them out unless --verbose is given
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg opens a file
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..engine.stream import check_display, run_stream, video_paths
    from ..errors import ConfigError
    from ..sources import Reconnect, open_sources

    classes = parse_classes(args.classes, args.classes_file)
    if not (args.out or args.json or args.show):
        raise ConfigError("nothing to write: pass --out FILE.mp4, --json FILE.jsonl and/or --show")
    if args.show:
        check_display()
    if args.fps is not None and not args.fps > 0:
        raise ConfigError(f"--fps must be > 0, got {args.fps}")
    videos = video_paths(args.out, len(args.source)) if args.out else []
    if not getattr(args, "verbose", False):
        _quiet_opencv()
    reconnect = Reconnect(attempts=args.reconnect_attempts, backoff=args.reconnect_delay)
    # open (and check) every source before loading the model: a typo fails in a second, not after the load
    sources = open_sources(args.source, vid_stride=args.vid_stride, reconnect=reconnect)
    try:
        model = resolve_model(args.model, args.text_encoder, args.device)
        model.set_classes(classes)
        with logging_redirect_tqdm():  # reconnect warnings print above the progress bar, not into it
            stats = run_stream(
                model, sources, out=args.out, json_lines=args.json, show=args.show, conf=args.conf, iou=args.iou,
                imgsz=args.imgsz, max_det=args.max_det, agnostic=args.agnostic, fps=args.fps,
                progress=not args.no_progress,
            )  # fmt: skip
    except KeyboardInterrupt:
        for video in videos:
            if video.exists():
                print(f"annotated video (closed, playable): {video}", file=sys.stderr)
        raise
    finally:
        for source in sources:
            source.close()
    summary = f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} FPS)"
    if any(s.live for s in sources):
        summary += f", {stats.dropped} dropped to keep up with the live source"
    print(summary, file=sys.stderr)
    for video in stats.videos:
        print(f"annotated video: {video}", file=sys.stderr)
    if stats.json_lines:
        print(f"detections: {stats.json_lines}", file=sys.stderr)
    return 0
