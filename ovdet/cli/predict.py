"""``ovdet predict``: detect free-text classes in images; print, draw and/or write JSON.

Outputs are checked before the model loads and written as results come: after an error, Ctrl-C or SIGTERM the
annotated images and the JSON file hold every image done. An unreadable image is skipped with a warning; the run
goes on and exits with status 3 (see ``EXIT_SKIPPED``) to say that some images were not predicted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from .common import add_class_args, add_model_args, positive_int, probability, resolve_model

HELP = "detect free-text classes in images"
EXIT_SKIPPED = 3  # the run finished, but some inputs could not be read (they are listed on stderr)
EPILOG = """exit status: 0 every image predicted; 2 bad input or settings (nothing done); 3 finished, but some
images could not be read and were skipped (listed on stderr); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM) —
in both, what was done is written."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help=HELP, description=HELP, epilog=EPILOG)
    p.add_argument("source", nargs="+", help="image files, folders or glob patterns")
    add_class_args(p, default_help=" (default: the model's own classes)", visual=True)
    add_model_args(p)
    p.add_argument("--conf", type=probability, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--iou", type=probability, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="inference size (default: the model's)")
    p.add_argument("--max-det", type=positive_int, default=300, help="maximum detections per image")
    p.add_argument("--batch", type=positive_int, default=8, help="images per forward pass")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save", metavar="DIR", help="write annotated images to DIR (new, empty, or an earlier --save)")
    p.add_argument("--json", metavar="FILE", help="write all detections to FILE as a JSON array")
    p.add_argument("--overwrite", action="store_true", help="write into --save DIR even if it holds other files (none "
                   "of them is replaced: a taken name gets a suffix)")
    p.set_defaults(func=run)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _unique_name(folder: Path, name: str, taken: set[str]) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix or ".jpg"
    candidate, i = f"{stem}{suffix}", 1
    while candidate in taken:
        candidate, i = f"{stem}_{i}{suffix}", i + 1
    taken.add(candidate)
    return folder / candidate


def _check_outputs(
    args: argparse.Namespace, items: list, classes: dict[str, list] | None
) -> tuple[Path | None, Path | None]:
    """The --save folder and --json file, checked before the model loads (nothing is created yet). The files the
    class options read (the classes and prompts files, the visual prompts' images) are inputs too."""
    from ..errors import OutputError
    from ..fileio import check_output_dir, check_output_file, has_marker
    from .common import check_outputs, class_inputs, model_inputs, prompt_images

    json_path = check_output_file(args.json, what="--json file") if args.json else None
    check_outputs({"--json": args.json}, [*args.source, *class_inputs(args, classes), *model_inputs(args)])
    if not args.save:
        return None, json_path
    save = Path(os.path.realpath(args.save))
    references = prompt_images(classes)  # --save writes images: only an image there could be replaced
    if any(Path(os.path.realpath(item)).parent == save for item in [*items, *references] if isinstance(item, str)):
        raise OutputError(f"--save {args.save} holds input images, which ovdet never writes over; choose another folder")
    return check_output_dir(save, what="--save folder", owned=has_marker("predict"), overwrite=args.overwrite), json_path


def _open_save_dir(save_dir: Path, overwrite: bool) -> set[str]:
    """Create (or reuse) the --save folder; returns the names that must not be written over.

    A new, empty or earlier --save folder becomes ovdet's (marked): its images may be replaced. A folder of the user's
    taken with --overwrite is written into without being marked, and none of its files is ever replaced: an output
    whose name is taken gets a suffix (``photo_1.jpg``).
    """
    from ..fileio import has_marker, prepare_output_dir

    if not save_dir.exists() or not any(save_dir.iterdir()) or has_marker("predict")(save_dir):
        prepare_output_dir(save_dir, kind="predict", what="--save folder", overwrite=overwrite)
        return set()
    save_dir.mkdir(parents=True, exist_ok=True)
    return {p.name for p in save_dir.iterdir()}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..errors import VocabularyError
    from ..fileio import JsonArrayWriter
    from ..images import resolve_images
    from .common import parse_classes, prepare_compute, quiet_opencv, set_classes

    given = args.classes is not None or args.classes_file is not None or args.visual_prompts is not None
    classes = parse_classes(args.classes, args.classes_file, args.visual_prompts) if given else None
    items = resolve_images(args.source)  # missing files, videos, empty folders: before anything else
    save_dir, json_path = _check_outputs(args, items, classes)
    device = prepare_compute(args.device, args.threads, args.imgsz, min(args.batch, len(items)), model=args.model)
    if not getattr(args, "verbose", False):
        quiet_opencv()
    model = resolve_model(args.model, args.text_encoder, device, args.threads)
    if classes is not None:
        set_classes(model, classes, args.imgsz)
    elif not model.names:  # a saved model (e.g. converted from YOLO-World) may carry its own vocabulary
        raise VocabularyError('this model has no classes of its own; pass --classes "person,bus" or --classes-file FILE')
    taken = _open_save_dir(save_dir, args.overwrite) if save_dir else set()  # before the JSON, which may live inside
    if save_dir and json_path and Path(os.path.realpath(json_path.parent)) == save_dir:
        taken.add(json_path.name)  # --json out/a.jpg: the annotated a.jpg becomes a_1.jpg, neither replaces the other
    skipped: list[str] = []
    done = 0
    writer = JsonArrayWriter(json_path, indent=None, what="--json file") if json_path else None
    bar = tqdm(total=len(items), unit="img", disable=len(items) < 2, file=sys.stderr)

    def skip(path: str, error: Exception) -> None:
        skipped.append(path)
        bar.write(f"ovdet predict: warning: skipping: {error}", file=sys.stderr)
        bar.update()

    try:
        results = model.predict_iter(
            items, conf=args.conf, iou=args.iou, imgsz=args.imgsz, max_det=args.max_det, batch=args.batch,
            agnostic=args.agnostic, keep_images=save_dir is not None, on_error=skip,
        )  # fmt: skip
        for result in results:
            record = result.to_dict()
            if save_dir:
                saved = _unique_name(save_dir, Path(result.path or "image.jpg").name, taken)
                result.save(saved)
                record["saved"] = str(saved)
            if writer is not None:
                writer.write(record)
            done += 1
            counts = Counter(result.labels)  # printed once on disk: a line seen is a result kept
            summary = ", ".join(f"{n} {label}" for label, n in counts.most_common()) or "no detections"
            bar.write(f"{result.path or 'image'}: {summary}", file=sys.stdout)
            bar.update()
    finally:
        bar.close()
        if writer is not None:
            writer.close()  # a valid JSON array of every image done, however the loop ended
        if save_dir and done:
            print(f"annotated images: {save_dir}", file=sys.stderr)
        if writer is not None:
            print(f"detections: {json_path} ({_count(writer.count, 'image')})", file=sys.stderr)
    if skipped:
        print(
            f"ovdet predict: {_count(done, 'image')} predicted, {len(skipped)} skipped (unreadable): "
            + ", ".join(skipped),
            file=sys.stderr,
        )
        return EXIT_SKIPPED
    return 0
