"""``ovdet stream``: detect free-text classes in videos, webcams, RTSP/HTTP streams or image folders, frame by frame."""

from __future__ import annotations

import argparse
import os
import sys

from .common import (
    add_class_args,
    add_model_args,
    class_inputs,
    model_inputs,
    parse_classes,
    positive_int,
    probability,
    quiet_opencv,
    resolve_model,
)

HELP = "detect free-text classes in a video, webcam, stream URL or image folder"
EPILOG = """examples:
  ovdet stream clip.mp4 --classes "person, dog" --out runs/clip.mp4 --json runs/clip.jsonl
  ovdet stream 0 --classes "person" --show                          # webcam 0
  ovdet stream rtsp://user:pass@192.168.1.10/stream1 --classes "car" --out cam.mp4 --reconnect-attempts inf
  ovdet stream frames/ --classes "cat" --out frames.mp4 --fps 25    # an image folder played as a video
  ovdet stream clip.mp4 --classes "person"                          # print each frame's detections

exit status: 0 done; 2 bad input or settings, or a live source lost for good; 130 Ctrl-C, 143 SIGTERM (the video
and JSON lines written so far are closed and complete).
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
    add_class_args(p, default_help=" (default: the model's own classes)", visual=True)
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


def _print_frame(result) -> None:  # noqa: ANN001 (a Result)
    from collections import Counter

    counts = Counter(result.labels)
    summary = ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "no detections"
    print(f"{result.source} frame {result.frame_index}: {summary}", flush=True)


def _modified(path: os.PathLike) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..engine.stream import check_display, run_stream, video_paths
    from ..errors import ConfigError, VocabularyError
    from ..fileio import check_output_file
    from ..io.video import MAX_FPS
    from ..sources import Reconnect, open_sources
    from .common import check_outputs, prepare_compute

    from .common import set_classes

    given = args.classes is not None or args.classes_file is not None or args.visual_prompts is not None
    classes = parse_classes(args.classes, args.classes_file, args.visual_prompts) if given else None
    if args.show:
        check_display()
    if args.fps is not None and not 0 < args.fps <= MAX_FPS:
        raise ConfigError(f"--fps must be > 0 and at most {MAX_FPS} (MPEG-4's time base), got {args.fps}")
    videos = video_paths(args.out, len(args.source)) if args.out else []
    for video in videos:
        check_output_file(video, what="--out video", example="out.mp4")
    if args.json:
        check_output_file(args.json, what="--json file", example="out.jsonl")
    check_outputs({**{f"--out ({v.name})" if len(videos) > 1 else "--out": v for v in videos}, "--json": args.json},
                  [*args.source, *class_inputs(args, classes), *model_inputs(args)])  # fmt: skip
    # a frame of each source per pass
    device = prepare_compute(args.device, args.threads, args.imgsz, len(args.source), model=args.model)
    if not getattr(args, "verbose", False):
        quiet_opencv()
    reconnect = Reconnect(attempts=args.reconnect_attempts, backoff=args.reconnect_delay)
    # open (and check) every source before loading the model: a typo fails in a second, not after the load
    sources = open_sources(args.source, vid_stride=args.vid_stride, reconnect=reconnect)
    before = {video: _modified(video) for video in videos}  # a video there already is not this run's
    printing = not (args.out or args.json or args.show)  # nothing else asked for: print detections, as predict does
    stats = None
    try:
        model = resolve_model(args.model, args.text_encoder, device, args.threads)
        if classes is not None:
            set_classes(model, classes, args.imgsz)
        elif not model.names:
            raise VocabularyError('this model has no classes of its own; pass --classes "person,bus" or --classes-file FILE')
        with logging_redirect_tqdm():  # reconnect warnings print above the progress bar, not into it
            stats = run_stream(
                model, sources, out=args.out, json_lines=args.json, show=args.show, conf=args.conf, iou=args.iou,
                imgsz=args.imgsz, max_det=args.max_det, agnostic=args.agnostic, fps=args.fps,
                progress=not (args.no_progress or printing), on_result=_print_frame if printing else None,
            )  # fmt: skip
    finally:
        for source in sources:
            source.close()
        if stats is None:  # stopped early (error, Ctrl-C, SIGTERM): say what was written
            for video in videos:
                if _modified(video) not in (None, before[video]):
                    print(f"annotated video (closed, playable): {video}", file=sys.stderr)
    summary = f"{stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} FPS)"
    if any(s.live for s in sources):
        summary += f", {stats.dropped} dropped to keep up with the live source"
    print(summary, file=sys.stderr)
    for video in stats.videos:
        if video.exists():  # no frame read, no video
            print(f"annotated video: {video}", file=sys.stderr)
        else:
            print(f"no annotated video written to {video}: no frame was read", file=sys.stderr)
    if stats.json_lines:
        print(f"detections: {stats.json_lines}", file=sys.stderr)
    skipped = [path for source in sources for path in source.skipped]
    if skipped:  # done, but not with every input: exit status 3, as predict
        print(f"ovdet stream: {len(skipped)} skipped (unreadable): {', '.join(skipped)}", file=sys.stderr)
        return 3
    return 0
