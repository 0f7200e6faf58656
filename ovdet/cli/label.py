"""``ovdet label``: turn images and videos into a training dataset (COCO, YOLO, Label Studio); see
:mod:`ovdet.engine.label`."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args, positive_int, probability

HELP = "label images and videos into a training dataset (COCO, YOLO, Label Studio)"
EXIT_SKIPPED = 3
EPILOG = """examples:
  ovdet label images/ --classes "forklift, worker=person|worker, pallet" --out ds
  ovdet label images/ clips/*.mp4 --classes ontology.yaml --negative "shelf, thermos" --conf 0.3 --conf forklift=0.5 \\
      --format coco,yolo,labelstudio --vid-stride 10 --out ds
  ovdet label images/ --classes ontology.yaml --out ds --resume          # after a crash or a kill, or with new images
  ovdet label images/ --classes ontology.yaml --out ds --engine ray --actors 4

exit status: 0 every image labelled; 2 bad input or settings (nothing done); 3 finished, but some inputs could not be
read and were skipped (listed on stderr and in summary.json); 130 Ctrl-C, 143 SIGTERM (the dataset holds every image
labelled so far; --resume continues).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("label", help=HELP, description=HELP, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("source", nargs="+", help="image files, folders (searched recursively), glob patterns, videos")
    p.add_argument("--classes", required=True,
                   help='the output classes: "forklift, worker=person|worker" (CLASS=PROMPT|PROMPT gives a class '
                   "several prompts), or a YAML ontology file (classes, negative, conf) or a class file")  # fmt: skip
    p.add_argument("--negative", help='prompts scored but never written, e.g. "shelf, thermos": they take confusable '
                   "objects away from the classes")  # fmt: skip
    p.add_argument("--out", required=True, help="the dataset folder (new or empty; an earlier run's with --resume or "
                   "--overwrite)")  # fmt: skip
    add_model_args(p)
    p.add_argument("--conf", action="append", metavar="[CLASS=]THRESHOLD",
                   help="minimum score: 0.3 (the default) for every class, CLASS=0.5 for one (repeat the option)")
    p.add_argument("--iou", type=probability, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--agnostic", action="store_true", help="NMS across output classes (one class per object)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="inference size (default: the model's)")
    p.add_argument("--max-det", type=positive_int, default=300, help="maximum boxes per image")
    p.add_argument("--batch", type=positive_int, default=8, help="images per forward pass")
    p.add_argument("--format", default="coco,yolo", help="outputs, any of coco,yolo,labelstudio (default coco,yolo)")
    p.add_argument("--split", type=float, default=0.8, help="fraction of images for training (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    p.add_argument("--copy-images", action="store_true", help="copy images into the dataset (default: link them)")
    p.add_argument("--vid-stride", type=positive_int, default=1, help="label every N-th frame of videos")
    p.add_argument("--resume", action="store_true", help="continue the run in --out: label only what is new")
    p.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out (only its own files)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help='local: this process; ray: Ray Data actors (pip install "ovdet[ray]"; RAY_ADDRESS joins a '
                   "cluster)")  # fmt: skip
    p.add_argument("--actors", type=positive_int, default=None,
                   help="Ray: detector actors (default: one per GPU, else 2 on CPUs)")
    p.add_argument("--ls-from-name", default="label", help="Label Studio: the RectangleLabels tag's name")
    p.add_argument("--ls-to-name", default="image", help="Label Studio: the Image tag's name (and data key)")
    p.add_argument("--ls-url-prefix", default=None,
                   help="Label Studio: what comes before images/SPLIT/NAME in each task's image URL (default "
                   "/data/local-files/?d=OUTNAME/, for Label Studio serving local files from --out's parent)")
    p.add_argument("--samples", type=int, default=16, help="images on the contact sheet (default 16; 0: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.label import label
    from .common import is_onnx_model, prepare_compute, quiet_opencv, resolve_model

    # with Ray the GPUs are the actors' (on any node): this process checks and uses the CPU only
    device = prepare_compute(args.device if args.engine == "local" else "cpu", args.threads, args.imgsz, args.batch,
                             model=args.model)  # fmt: skip
    if args.engine == "ray":
        device = args.device or "cpu"
    if not getattr(args, "verbose", False):
        quiet_opencv()
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    model = args.model
    if args.engine == "local" and model is not None and is_onnx_model(model):
        model = resolve_model(model, args.text_encoder, device, args.threads)  # an ONNX export runs in ONNX Runtime

    def skip(path: str, error: Exception) -> None:
        print(f"ovdet label: warning: skipping: {error}", file=sys.stderr)

    summary = label(
        args.source, args.classes, out=args.out, negative=args.negative, conf=args.conf, iou=args.iou,
        imgsz=args.imgsz, max_det=args.max_det, agnostic=args.agnostic, model=model, text_encoder=args.text_encoder,
        device=device, batch=args.batch, formats=formats, split=args.split, seed=args.seed,
        copy_images=args.copy_images, vid_stride=args.vid_stride, resume=args.resume, overwrite=args.overwrite,
        engine=args.engine, actors=args.actors, threads=args.threads, samples=max(args.samples, 0), progress=True,
        labelstudio={"from_name": args.ls_from_name, "to_name": args.ls_to_name, "url_prefix": args.ls_url_prefix},
        on_skip=skip,
    )  # fmt: skip
    width = max([len(n) for n in summary.classes] + [5])
    print(f"{'class':<{width}}  {'boxes':>7}  {'images':>7}  mean score")
    for name, row in summary.classes.items():
        mean = f"{row['mean_score']:.3f}" if row["mean_score"] is not None else "-"
        print(f"{name:<{width}}  {row['count']:>7}  {row['images']:>7}  {mean}")
    print(f"{summary.out}: {summary.images} images ({summary.train} train, {summary.val} val), {summary.boxes} boxes; "
          f"{summary.labelled} labelled by this run", file=sys.stderr)  # fmt: skip
    if summary.skipped:
        listed = "; ".join(summary.skipped)
        print(f"ovdet label: {len(summary.skipped)} skipped (unreadable): {listed}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
