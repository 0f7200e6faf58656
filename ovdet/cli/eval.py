"""``ovdet eval``: COCO or LVIS metrics of a model on a dataset split; writes predictions.json and metrics.json."""

from __future__ import annotations

import argparse

from .common import add_model_args, positive_int, probability, resolve_model

HELP = "evaluate a model on a dataset split (pycocotools COCO AP or lvis LVIS AP)"
EPILOG = """metrics that cannot be measured (no objects of a size, no LVIS frequency groups) print as '–' and are null
in metrics.json. exit status: 0 done; 2 bad input or settings; 3 done, but some images could not be read (left out
of the metrics, listed on stderr); 130 Ctrl-C, 143 SIGTERM (predictions.json holds the images done)."""
EXIT_SKIPPED = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=HELP, epilog=EPILOG)
    add_model_args(p)
    p.add_argument("--data", required=True, help="dataset YAML")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--metric", choices=("coco", "lvis"), default="coco")
    p.add_argument("--conf", type=probability, default=0.001, help="score threshold (default 0.001)")
    p.add_argument("--iou", type=probability, default=0.7, help="NMS IoU (default 0.7)")
    p.add_argument("--max-det", type=positive_int, default=None, help="detections per image (default 300; LVIS 1000)")
    p.add_argument("--imgsz", type=positive_int, default=None, help="inference size (default: the model's)")
    p.add_argument("--batch", type=positive_int, default=8)
    p.add_argument("--group-by", metavar="FIELD", help="also report metrics per value of a category field")
    p.add_argument("--out", required=True, metavar="DIR", help="where predictions.json and metrics.json go")
    p.add_argument("--overwrite", action="store_true", help="write into --out even if it holds other files")
    p.add_argument("--strict", action="store_true", help="invalid annotations are errors, not skipped")
    p.set_defaults(func=run)


def fmt(value: float | None) -> str:
    """A metric as printed: 4 decimals, or '–' where it does not apply."""
    return "–" if value is None else f"{value:.4f}"


def per_class_table(rows: list[dict]) -> str:
    """The per-class AP table printed at the end of ``ovdet eval`` (as ultralytics' validator prints one)."""
    width = max([len("class"), *(len(r["name"]) for r in rows)])
    lines = [f"{'class':<{width}}  {'instances':>9}  {'AP50':>6}  {'AP':>6}"]
    for r in rows:
        lines.append(f"{r['name']:<{width}}  {r['instances']:>9}  {fmt(r['AP50']):>6}  {fmt(r['AP']):>6}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..data.datasets import load_dataset_config, load_split
    from ..engine.evaluate import evaluate
    from ..fileio import check_output_dir, has_marker
    from .common import prepare_compute, quiet_opencv

    check_output_dir(args.out, what="--out folder", owned=has_marker("eval"), overwrite=args.overwrite)
    data = load_dataset_config(args.data)
    split = load_split(data, args.split, strict=args.strict)
    device = prepare_compute(args.device, args.threads, args.imgsz, args.batch, model=args.model)
    if not getattr(args, "verbose", False):
        quiet_opencv()
    model = resolve_model(args.model, args.text_encoder, device, args.threads)
    metrics = evaluate(
        model, split, texts=data.texts, metric=args.metric, conf=args.conf, iou=args.iou, max_det=args.max_det,
        imgsz=args.imgsz, batch=args.batch, out_dir=args.out, group_by=args.group_by, overwrite=args.overwrite,
    )  # fmt: skip
    if metrics.get("per_class"):
        print(per_class_table(metrics["per_class"]))
    keys = [k for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf") if k in metrics]
    print(" ".join(f"{k}={fmt(metrics[k])}" for k in keys))
    if "segm" in metrics:  # models with instance masks: mask AP beside box AP
        segm = metrics["segm"]
        text = " ".join(f"{k}={fmt(segm[k])}" for k in keys[:6]) if segm else "not applicable (no ground-truth masks)"
        print(f"segm: {text}")
    for name, group in metrics.get("groups", {}).items():
        print(f"  {name}: " + " ".join(f"{k}={fmt(group[k])}" for k in ("AP", "AP50")))
    print(f"predictions and metrics: {args.out}")
    if metrics["skipped"]:
        print(
            f"ovdet eval: {len(metrics['skipped'])} images could not be read and are left out of the metrics: "
            + ", ".join(metrics["skipped"]),
            file=sys.stderr,
        )
        return EXIT_SKIPPED
    return 0
