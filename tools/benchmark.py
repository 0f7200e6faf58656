"""Benchmarks, each printing side-by-side figures measured in one run.

    python tools/benchmark.py text      # set_classes for the 1,203 LVIS names: cold, warm, vs untrimmed encoding
    python tools/benchmark.py predict --threads 2   # ovdet vs ultralytics YOLOWorld.predict on the same weights

Run on an otherwise idle machine; threads default to all cores (``--threads`` to pin).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def lvis_names() -> list[str]:
    """The 1,203 LVIS category names, from the dataset YAML that ships inside ultralytics (no download)."""
    import ultralytics
    import yaml

    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "lvis.yaml"
    names = list(yaml.safe_load(path.read_text())["names"].values())
    assert len(names) == 1203, len(names)
    return names


def timed(fn, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_text(args: argparse.Namespace) -> None:
    os.environ["OVDET_CACHE"] = tempfile.mkdtemp(prefix="ovdet-bench-cache-")  # cold means an empty cache
    import ovdet
    from ovdet.text import DEFAULT_CACHE

    names = lvis_names()
    torch.manual_seed(0)
    t = time.perf_counter()
    model = ovdet.build("ovdet-s", args.text_encoder)
    build_s = time.perf_counter() - t
    encoder = model.text_encoder

    cold = timed(lambda: model.set_classes(names))[0]
    warm_memory = timed(lambda: model.set_classes(names), repeat=args.repeat)
    warm_disk = []
    for _ in range(args.repeat):
        DEFAULT_CACHE.clear_memory()  # what a new process sees: the cache file only
        warm_disk += timed(lambda: model.set_classes(names))

    # the same 1,203 prompts without ovdet's trimming: 77-token batches of 80, as ultralytics encodes
    tokens = encoder.tokenizer(names)
    tower = encoder.tower

    def untrimmed():
        with torch.inference_mode():
            for chunk in tokens.split(80):
                tower(chunk)

    full = timed(untrimmed)[0]
    print(f"text encoder: {args.text_encoder} ({'random' if encoder.travels else 'pretrained'} weights), "
          f"torch threads: {torch.get_num_threads()}")
    print(f"build (incl. text tower): {build_s:8.2f} s")
    print("set_classes, 1,203 LVIS names")
    print(f"  cold (empty cache)       {cold:8.2f} s   target <= 12 s")
    print(f"  warm (in memory)         {statistics.median(warm_memory) * 1e3:8.1f} ms  target <= 50 ms")
    print(f"  warm (from disk)         {statistics.median(warm_disk) * 1e3:8.1f} ms")
    print(f"  untrimmed 77-token pass  {full:8.2f} s   -> trimming is {full / cold:.1f}x faster")


def random_world_checkpoint(scale: str, folder: Path) -> Path:
    """A YOLO-World v2 checkpoint with random weights and BatchNorm statistics from the two ultralytics photos,
    written as ultralytics writes one (a float16 module under "model"): the same file feeds both libraries."""
    import copy

    import cv2
    import ultralytics
    from ultralytics.nn.tasks import WorldModel

    from ovdet.model.preprocess import preprocess

    torch.manual_seed(0)
    model = WorldModel(f"yolov8{scale}-worldv2.yaml", nc=80, verbose=False)
    model.txt_feats = torch.nn.functional.normalize(torch.randn(1, 80, 512), dim=-1)
    model.names = dict(enumerate(coco_names()))
    assets = Path(ultralytics.__file__).parent / "assets"
    photos, _ = preprocess([cv2.imread(str(assets / f)) for f in ("bus.jpg", "zidane.jpg")], (640, 640))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # one training-mode pass sets exactly that batch's statistics
    model.train()
    with torch.no_grad():
        model(photos)
    model.eval()
    path = folder / f"yolov8{scale}-worldv2-random.pt"
    torch.save({"model": copy.deepcopy(model).half(), "train_args": {}, "version": ultralytics.__version__}, path)
    return path


def coco_names() -> list[str]:
    import ultralytics
    import yaml

    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco8.yaml"
    return list(yaml.safe_load(path.read_text())["names"].values())


def interleaved(variants: dict, repeat: int, warmup: int, threads: int) -> dict[str, list[float]]:
    """Time each variant ``repeat`` times, one run of each per round in rotating order, so that load from other
    processes hits all of them alike. Threads are pinned after the warm-up, because ultralytics' predictor sets the
    process's thread count (to cores - 1) when it is first set up."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name] += timed(variants[name])
    return times


def bench_predict(args: argparse.Namespace) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["OVDET_CACHE"] = tempfile.mkdtemp(prefix="ovdet-bench-cache-")
    import cv2
    import ultralytics
    from ultralytics import YOLOWorld

    import ovdet
    from ovdet.text import TextEncoder

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="ovdet-bench-"))
    checkpoint = Path(args.weights) if args.weights else random_world_checkpoint(args.scale, tmp)
    image = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    imgsz = args.imgsz

    theirs = YOLOWorld(str(checkpoint))
    plain = ovdet.from_ultralytics(checkpoint, trust_pickle=True)  # the caller vouches for --weights
    fused = ovdet.from_ultralytics(checkpoint, trust_pickle=True).fuse()
    print(f"weights: {checkpoint.name if args.weights else f'random yolov8{args.scale}-worldv2 (BN stats from photos)'}"
          f", image: bus.jpg (810x1080), imgsz {imgsz}, torch threads {threads}, ONNX Runtime threads {threads}, "
          f"median of {args.repeat} interleaved runs after {args.warmup} warm-up runs")
    print(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
          f"onnxruntime {__import__('onnxruntime').__version__}, CPU: {os.cpu_count()} cores")

    for label, names in (("80 COCO classes", coco_names()), ("1,203 LVIS classes", lvis_names())):
        gen = torch.Generator().manual_seed(1)
        emb = torch.nn.functional.normalize(torch.randn(len(names), 512, generator=gen), dim=-1)
        plain.set_classes(names, embeddings=emb)
        fused.set_classes(names, embeddings=emb)
        theirs.model.txt_feats = plain.class_embeddings[None].clone()  # what YOLOWorld.set_classes would install
        theirs.model.names = dict(enumerate(names))
        theirs.model.model[-1].nc = len(names)
        theirs.predictor = None
        onnx_path = plain.export("onnx", tmp / f"model-{len(names)}.onnx", imgsz=imgsz)
        onnx_model = ovdet.load_onnx(onnx_path, threads=threads)
        variants = {
            "ultralytics YOLOWorld.predict": lambda: theirs.predict(image, imgsz=imgsz, verbose=False),
            "ovdet predict (PyTorch)": lambda: plain.predict(image, imgsz=imgsz),
            "ovdet fuse() + predict (PyTorch)": lambda: fused.predict(image, imgsz=imgsz),
            "ovdet ONNX Runtime predict": lambda: onnx_model.predict(image, imgsz=imgsz),
        }
        counts = {"ultralytics YOLOWorld.predict": len(theirs.predict(image, imgsz=imgsz, verbose=False)[0].boxes)}
        counts.update({name: len(fn()[0]) for name, fn in list(variants.items())[1:]})
        times = interleaved(variants, args.repeat, args.warmup, threads)
        base = statistics.median(times["ultralytics YOLOWorld.predict"])
        print(f"\npredict, {label}                     median ms   vs ultralytics   detections")
        for name, t in times.items():
            ms = statistics.median(t)
            print(f"  {name:38s} {ms * 1e3:9.1f}   {ms / base:8.2f}x   {counts[name]:10d}")

    names = lvis_names()
    encoder = TextEncoder("ViT-B-32-quickgelu")  # random weights: the cost is the same as openai's, no download
    plain.text_encoder = fused.text_encoder = encoder
    cold = timed(lambda: plain.set_classes(names))[0]
    warm_plain = timed(lambda: plain.set_classes(names), repeat=args.repeat)
    warm_fused = timed(lambda: fused.set_classes(names), repeat=args.repeat)
    print("\nset_classes, 1,203 LVIS names (ViT-B-32-quickgelu text tower)")
    print(f"  cold (empty cache)                       {cold:8.2f} s")
    print(f"  warm (cached), unfused model             {statistics.median(warm_plain) * 1e3:8.1f} ms")
    print(f"  warm (cached), fused model (+ refolding) {statistics.median(warm_fused) * 1e3:8.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("text", help="set_classes timing for the 1,203 LVIS names")
    p.add_argument("--text-encoder", default="ViT-B-32-quickgelu", help="spec; default: random-weight ViT-B/32")
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=bench_text)
    p = sub.add_parser("predict", help="predict latency: ultralytics YOLOWorld vs ovdet (PyTorch, fused, ONNX Runtime)")
    p.add_argument("--scale", default="s", choices=list("nsmlx"), help="YOLO-World v2 scale for random weights")
    p.add_argument("--weights", help="a real ultralytics YOLO-World v2 .pt you trust (unpickled) instead of random")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.set_defaults(func=bench_predict)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
