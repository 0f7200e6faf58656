"""Benchmarks of the converted families (run through ``tools/benchmark.py``, or directly):

    python tools/benchmark.py --threads 2 predict --model yoloe-11s-seg   # ovdet vs ultralytics YOLOE.predict
    python tools/benchmark.py --threads 2 predict --model yolov8s-world   # YOLO-World v1
    python tools/benchmark.py masks      # 300 masks on a 4K frame: time and peak memory, ovdet vs ultralytics

Checkpoints are made offline as the parity tests make them: ultralytics' model from its shipped yaml, random
weights, BatchNorm statistics and contrastive-head scale/bias calibrated on ultralytics' two photos so that the
bus gets a few dozen detections (masks included), written as ultralytics writes checkpoints; ``--weights`` takes a
real one. Both libraries predict the same image with the same settings: ultralytics with ``retina_masks=True``
(masks in original-image pixels, as ovdet gives them) and, for YOLOE, its default class-agnostic NMS (ovdet gets
``agnostic=True``).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

FAMILY_MODELS = {"yolov8s-world": "yolov8s-world.yaml", "yoloe-11s-seg": "yoloe-11s-seg.yaml",
                 "yoloe-26s-seg": "yoloe-26s-seg.yaml", "yoloe-v8s-seg": "yoloe-v8s-seg.yaml"}  # fmt: skip


def _photos(imgsz: int, files: tuple[str, ...] = ("bus.jpg", "zidane.jpg")) -> torch.Tensor:
    import cv2
    import ultralytics

    from ovdet.model.preprocess import preprocess

    assets = Path(ultralytics.__file__).parent / "assets"
    return preprocess([cv2.imread(str(assets / f)) for f in files], (imgsz, imgsz))[0]


def random_checkpoint(name: str, folder: Path, imgsz: int = 640) -> Path:
    """An ultralytics checkpoint of ``name``'s layout with random, photo-calibrated weights (see the module doc)."""
    import math

    import ultralytics
    from ultralytics.nn.tasks import WorldModel, YOLOEModel, YOLOESegModel

    torch.manual_seed(0)
    cfg = FAMILY_MODELS[name]
    world = cfg.startswith("yolov8")
    model = (WorldModel if world else YOLOESegModel if "-seg" in cfg else YOLOEModel)(cfg, nc=80, verbose=False)
    raw = torch.nn.functional.normalize(torch.randn(1, 80, 512), dim=-1)
    head = model.model[-1]
    photos = _photos(imgsz)
    if world:
        model.txt_feats = raw
    else:
        for p in head.reprta.parameters():
            p.data.normal_(0, 0.02)
    run = (lambda: model(photos)) if world else (lambda: model(photos, tpe=raw))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # one training-mode pass sets exactly that batch's statistics
    model.train()
    with torch.no_grad():
        run()
    model.eval()
    scorers = list(head.cv4) + list(getattr(head, "one2one_cv4", None) or [])
    for h in scorers:
        h.logit_scale.data.zero_()
        h.bias.data.zero_()
    bus_alone = _photos(imgsz, ("bus.jpg",))  # as predict letterboxes it: minimal padding
    with torch.no_grad():
        preds = model(bus_alone)[1] if world else model(bus_alone, tpe=raw)[1]
        preds = preds.get("one2many", preds)
    bus = preds["scores"].amax(1)[0]  # about 40 of the bus's anchors pass conf 0.25: a few dozen detections
    start = torch.topk(bus, 40).values[-1].item()
    gain = 9.0 / (bus.max().item() - start)
    for h in scorers:
        h.logit_scale.data.fill_(math.log(gain))
        h.bias.data.fill_(-1.1 - gain * start)
    if not world:
        model.pe = head.get_tpe(raw).detach()
    model.names = {i: f"class {i}" for i in range(80)}
    path = folder / f"{name}-random.pt"
    task = "segment" if "-seg" in cfg else "detect"
    torch.save({"model": copy.deepcopy(model).half(), "train_args": {"task": task},
                "version": ultralytics.__version__}, path)  # fmt: skip
    return path


def bench_family_predict(args: argparse.Namespace) -> None:
    """ovdet (as loaded, fused, ONNX Runtime with a runtime or folded vocabulary) vs ultralytics' ``predict`` on one
    converted checkpoint, interleaved."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["OVDET_CACHE"] = tempfile.mkdtemp(prefix="ovdet-bench-cache-")
    import cv2
    import ultralytics
    from benchmark import interleaved
    from ultralytics import YOLOE, YOLOWorld

    import ovdet

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="ovdet-bench-"))
    checkpoint = Path(args.weights) if args.weights else random_checkpoint(args.model, tmp, args.imgsz)
    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    world = args.model.startswith("yolov8")
    theirs = (YOLOWorld if world else YOLOE)(str(checkpoint))
    plain = ovdet.from_ultralytics(checkpoint, trust_pickle=True)  # the caller vouches for --weights
    fused = ovdet.from_ultralytics(checkpoint, trust_pickle=True).fuse()
    kwargs = {"imgsz": args.imgsz, "conf": args.conf}
    agnostic = not world  # YOLOE.predict's default
    # YOLO26: ovdet predicts with the one-to-one branch, NMS-free, by default; ultralytics does so with nms=False
    theirs_kwargs = {**kwargs, "retina_masks": True, **({"nms": False} if plain.end2end else {})}
    # ONNX Runtime with each vocabulary mode: a runtime-vocabulary export predicts the classes it was exported with
    # until set_classes, so both score the checkpoint's 80 classes
    onnx = {mode: ovdet.load_onnx(plain.export("onnx", tmp / f"{mode}.onnx", vocabulary=mode, imgsz=args.imgsz),
                                  threads=threads) for mode in ("runtime", "folded")}  # fmt: skip
    variants = {
        "ultralytics predict": lambda: theirs.predict(image, device="cpu", verbose=False, **theirs_kwargs),
        "ovdet predict (as loaded)": lambda: plain.predict(image, agnostic=agnostic, **kwargs),
        "ovdet fuse() + predict": lambda: fused.predict(image, agnostic=agnostic, **kwargs),
        "ONNX Runtime, runtime vocabulary": lambda: onnx["runtime"].predict(image, agnostic=agnostic, **kwargs),
        "ONNX Runtime, folded": lambda: onnx["folded"].predict(image, agnostic=agnostic, **kwargs),
    }
    counts = {name: len(fn()[0]) for name, fn in variants.items()}
    counts["ultralytics predict"] = len(theirs.predict(image, device="cpu", verbose=False, **theirs_kwargs)[0].boxes)
    times = interleaved(variants, args.repeat, args.warmup, threads)
    base, best = statistics.median(times["ultralytics predict"]), min(times["ultralytics predict"])
    print(f"{args.model} ({checkpoint.name}), bus.jpg 810x1080, imgsz {args.imgsz}, conf {args.conf}, torch threads "
          f"{threads}, {args.repeat} interleaved runs after {args.warmup} warm-up runs; torch "
          f"{torch.__version__}, ultralytics {ultralytics.__version__}")  # fmt: skip
    # the best run too: on a shared machine, the fastest of many interleaved runs is the least disturbed one
    print(f"  {'':34s} {'median ms':>10s} {'ratio':>7s} {'best ms':>8s} {'ratio':>7s} {'detections':>11s}")
    for name, t in times.items():
        ms, fastest = statistics.median(t), min(t)
        print(f"  {name:34s} {ms * 1e3:10.1f} {ms / base:6.2f}x {fastest * 1e3:8.1f} {fastest / best:6.2f}x "
              f"{counts[name]:11d}")


_MASKS_CHILD = r"""
import resource, sys, time, torch
from ovdet.runtime.masks import masks_from_prototypes
from ovdet.runtime.letterbox import letterbox
import numpy as np
from ultralytics.utils.ops import process_mask_native
which, n, full = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(int(sys.argv[4]))
h, w = 2160, 3840
_, info = letterbox(np.zeros((h, w, 3), np.uint8), (640, 640), auto=True)
gen = torch.Generator().manual_seed(0)
protos = torch.randn(32, info.input_shape[0] // 4, info.input_shape[1] // 4, generator=gen)
coef = torch.randn(n, 32, generator=gen) * 0.3
if full:
    boxes = torch.tensor([[0.0, 0.0, w, h]]).repeat(n, 1)
else:  # boxes of 2-25 % of the frame's side, as a street scene's objects
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.75, h * 0.75])
    size = torch.rand(n, 2, generator=gen) * 0.23 + 0.02
    boxes = torch.cat([xy, xy + size * torch.tensor([w, h])], 1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if which == "ovdet":
    out = masks_from_prototypes(protos.numpy(), coef.numpy(), boxes.numpy(), info)
else:
    out = process_mask_native(protos, coef, boxes, (h, w))
seconds = time.perf_counter() - t
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
kept = out.nbytes if which == "ovdet" else out.numel()
print(f"{seconds:.3f} {peak:.0f} {kept / 2**20:.0f}")
"""


def bench_masks(args: argparse.Namespace) -> None:
    """300 instance masks on a 4K (3840x2160) frame: ovdet's per-box decoding vs ultralytics' process_mask_native
    (retina masks), each in a fresh process: time, peak resident memory added, and what the result keeps."""
    threads = args.threads or 1
    print(f"4K frame (3840x2160), 640 input, {args.detections} detections, torch threads {threads}; each run in a "
          "fresh process (peak RSS is the growth of the process's maximum resident set during the call)")
    print(f"  {'':46s} {'seconds':>8s} {'peak MB':>8s} {'result MB':>10s}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for full in (False, True):
        for which in ("ultralytics", "ovdet"):
            out = subprocess.run([sys.executable, "-c", _MASKS_CHILD, which, str(args.detections), str(int(full)),
                                  str(threads)], capture_output=True, text=True, env=env, check=True)  # fmt: skip
            seconds, peak, kept = out.stdout.split()
            what = f"{'ultralytics process_mask_native' if which == 'ultralytics' else 'ovdet masks_from_prototypes'}"
            print(f"  {what + (', full-frame boxes' if full else ', street-scene boxes'):46s} {float(seconds):8.2f} "
                  f"{float(peak):8.0f} {float(kept):10.0f}")  # fmt: skip
    dense = args.detections * 3840 * 2160 / 2**20
    print(f"  a dense (N, H, W) bool array of {args.detections} masks: {dense:.0f} MB")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("masks", help="300 masks on a 4K frame: time and memory, ovdet vs ultralytics")
    p.add_argument("--detections", type=int, default=300)
    p.set_defaults(func=bench_masks)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    sub = parser.add_subparsers(dest="what", required=True)
    add_parsers(sub)
    a = parser.parse_args()
    t0 = time.time()
    a.func(a)
