"""``ovdet predict``: detect free-text classes in images; print, draw and/or write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from ..errors import VocabularyError
from .common import add_model_args, parse_classes, positive_int, probability, resolve_model

HELP = "detect free-text classes in images"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help=HELP, description=HELP)
    p.add_argument("source", nargs="+", help="image files, folders or glob patterns")
    p.add_argument(
        "--classes", help='comma-separated class names, e.g. "person,red backpack" (default: the model\'s own classes)'
    )
    p.add_argument("--classes-file", help="a text file with one class name per line")
    add_model_args(p)
    p.add_argument("--conf", type=probability, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=probability, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="inference size (default: the model's)")
    p.add_argument("--max-det", type=positive_int, default=300, help="maximum detections per image")
    p.add_argument("--batch", type=positive_int, default=8, help="images per forward pass")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save", metavar="DIR", help="write annotated images to DIR")
    p.add_argument("--json", metavar="FILE", help="write all detections to FILE as JSON")
    p.set_defaults(func=run)


def _unique_name(folder: Path, name: str, taken: set[str]) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix or ".jpg"
    candidate, i = f"{stem}{suffix}", 1
    while candidate in taken:
        candidate, i = f"{stem}_{i}{suffix}", i + 1
    taken.add(candidate)
    return folder / candidate


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..fileio import atomic_write_text
    from ..images import resolve_images

    given = args.classes is not None or args.classes_file is not None
    classes = parse_classes(args.classes, args.classes_file) if given else None
    items = resolve_images(args.source)  # fail on missing files before loading the model
    model = resolve_model(args.model, args.text_encoder, args.device)
    if classes is not None:
        model.set_classes(classes)
    elif not model.names:  # a saved model (e.g. converted from YOLO-World) may carry its own vocabulary
        raise VocabularyError(
            'this model has no classes of its own; pass --classes "person,bus" or --classes-file FILE'
        )
    save_dir = Path(args.save) if args.save else None
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    records = []
    results = model.predict_iter(
        items, conf=args.conf, iou=args.iou, imgsz=args.imgsz, max_det=args.max_det, batch=args.batch,
        agnostic=args.agnostic, keep_images=save_dir is not None,
    )  # fmt: skip
    with tqdm(total=len(items), unit="img", disable=len(items) < 2, file=sys.stderr) as bar:
        for result in results:
            counts = Counter(result.labels)
            summary = ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "no detections"
            bar.write(f"{result.path}: {summary}", file=sys.stdout)
            if save_dir:
                out = _unique_name(save_dir, Path(result.path).name, taken)
                result.save(out)
            records.append(result.to_dict())
            bar.update()
    if save_dir:
        print(f"annotated images: {save_dir}", file=sys.stderr)
    if args.json:
        atomic_write_text(args.json, json.dumps(records, indent=1) + "\n")
        print(f"detections: {args.json}", file=sys.stderr)
    return 0
