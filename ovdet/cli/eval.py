"""``ovdet eval``: COCO or LVIS metrics of a model on a dataset split; writes predictions.json and metrics.json."""

from __future__ import annotations

import argparse

from .common import add_model_args, positive_int, probability, resolve_model

HELP = "evaluate a model on a dataset split (pycocotools COCO AP or lvis LVIS AP)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=HELP)
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
    p.add_argument("--strict", action="store_true", help="invalid annotations are errors, not skipped")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.datasets import load_dataset_config, load_split
    from ..engine.evaluate import evaluate

    data = load_dataset_config(args.data)
    split = load_split(data, args.split, strict=args.strict)
    model = resolve_model(args.model, args.text_encoder, args.device)
    metrics = evaluate(
        model, split, texts=data.texts, metric=args.metric, conf=args.conf, iou=args.iou, max_det=args.max_det,
        imgsz=args.imgsz, batch=args.batch, out_dir=args.out, group_by=args.group_by,
    )  # fmt: skip
    keys = [k for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf") if k in metrics]
    print(" ".join(f"{k}={metrics[k]:.4f}" for k in keys))
    if "segm" in metrics:  # models with instance masks: mask AP beside box AP
        segm = metrics["segm"]
        text = " ".join(f"{k}={segm[k]:.4f}" for k in keys[:6]) if segm else "not applicable (no ground-truth masks)"
        print(f"segm: {text}")
    for name, group in metrics.get("groups", {}).items():
        print(f"  {name}: " + " ".join(f"{k}={group[k]:.4f}" for k in ("AP", "AP50")))
    print(f"predictions and metrics: {args.out}")
    return 0
