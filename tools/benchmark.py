"""Benchmarks, each printing side-by-side figures measured in one run.

    python tools/benchmark.py text      # set_classes for the 1,203 LVIS names: cold, warm, vs untrimmed encoding
    python tools/benchmark.py train     # training images/s: ovdet vs ultralytics' WorldTrainer, same data and size
    python tools/benchmark.py train-step   # one forward, loss and backward: ovdet vs ultralytics' WorldModel
    python tools/benchmark.py data      # ms per augmented training sample: ovdet vs ultralytics, same images
    python tools/benchmark.py stream    # model.stream(video) vs model.detect on the same, pre-decoded frames
    python tools/benchmark.py predict --threads 2   # ovdet vs ultralytics YOLOWorld.predict on the same weights
    python tools/benchmark.py --threads 2 predict --model yoloe-11s-seg   # other families: see tools/bench_families.py
    python tools/benchmark.py masks     # 300 masks on a 4K frame: time and peak memory, ovdet vs ultralytics
    python tools/benchmark.py int8 --threads 2      # INT8 vs fp32 ONNX on the bundled model: AP50 and speed

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


CLOCK = time.perf_counter  # --clock cpu: time.thread_time, the CPU time of the calling thread


def timed(fn, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        t = CLOCK()
        fn()
        out.append(CLOCK() - t)
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

    import ovdet
    from ovdet.runtime import OnnxTextEncoder

    onnx_path = ovdet.export_text_encoder(encoder, Path(tempfile.mkdtemp(prefix="ovdet-bench-text-")) / "text.onnx")
    onnx_encoder = OnnxTextEncoder(onnx_path, cache=None, threads=args.threads)
    onnx_cold = timed(lambda: onnx_encoder.encode(names))[0]
    print(f"text encoder: {args.text_encoder} ({'random' if encoder.travels else 'pretrained'} weights), "
          f"torch threads: {torch.get_num_threads()}")
    print(f"build (incl. text tower): {build_s:8.2f} s")
    print("set_classes, 1,203 LVIS names")
    print(f"  cold (empty cache)       {cold:8.2f} s   target <= 12 s")
    print(f"  warm (in memory)         {statistics.median(warm_memory) * 1e3:8.1f} ms  target <= 50 ms")
    print(f"  warm (from disk)         {statistics.median(warm_disk) * 1e3:8.1f} ms")
    print(f"  untrimmed 77-token pass  {full:8.2f} s   -> trimming is {full / cold:.1f}x faster")
    print(f"  cold, ONNX Runtime text encoder (exported, no torch)  {onnx_cold:8.2f} s")


def _make_yolo_dataset(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """Coloured shapes on noise, YOLO-txt layout (read by both ovdet and ultralytics); returns the YAML."""
    import cv2
    import numpy as np
    import yaml

    rng = np.random.default_rng(seed)
    names = ["red square", "blue circle", "green square", "yellow circle"]
    colors = [(0, 0, 230), (230, 60, 0), (0, 200, 0), (0, 220, 230)]
    h, w = size
    for split in ("train",):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(60, 190, (h, w, 3), dtype=np.uint8)
            lines = []
            for _ in range(int(rng.integers(2, 7))):
                c = int(rng.integers(len(names)))
                s = int(rng.integers(40, 160))
                x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
                if "circle" in names[c]:
                    cv2.circle(image, (x + s // 2, y + s // 2), s // 2, colors[c], -1)
                else:
                    cv2.rectangle(image, (x, y), (x + s, y + s), colors[c], -1)
                lines.append(f"{c} {(x + s / 2) / w:.6f} {(y + s / 2) / h:.6f} {s / w:.6f} {s / h:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), image)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(root), "train": "images/train", "val": "images/train", "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def bench_train(args: argparse.Namespace) -> None:
    """Seconds per epoch (after a first, warm-up epoch) of ovdet and of ultralytics' WorldTrainer on one dataset."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["OVDET_CACHE"] = tempfile.mkdtemp(prefix="ovdet-bench-cache-")
    root = Path(tempfile.mkdtemp(prefix="ovdet-bench-train-"))
    data = _make_yolo_dataset(root / "data", args.images, (480, 640))
    common = dict(epochs=2, imgsz=args.imgsz, batch=args.batch, workers=args.workers)
    rows = []

    from ovdet.engine.settings import load_settings
    from ovdet.engine.train import train

    threads = args.threads or 1  # ultralytics trains on min(8, cores - 1) threads: 1 here; time ovdet alike
    for config in args.ovdet:
        torch.set_num_threads(threads)
        settings = load_settings(None, {"data": str(data), "model": config, "text_encoder": "ViT-B-32-quickgelu",
                                        "out": str(root / config), "val_split": "none", "close_mosaic": 0, **common})
        run = train(settings, progress=False)
        import csv

        seconds = float(list(csv.DictReader(open(run / "metrics.csv")))[-1]["seconds"])
        rows.append((f"ovdet {config}", seconds))

    import yaml
    from ultralytics import YOLOWorld

    names = list(yaml.safe_load(data.read_text())["names"].values())
    gen = torch.Generator().manual_seed(0)  # WorldTrainer reads cached text embeddings: no CLIP download
    embeddings = torch.nn.functional.normalize(torch.randn(len(names), 512, generator=gen), dim=-1)
    torch.save(dict(zip(names, embeddings)), root / "data" / "images" / "text_embeddings_clip_ViT-B_32.pt")
    from ultralytics.models.yolo.world.train import WorldTrainer

    class OfflineWorldTrainer(WorldTrainer):
        """WorldTrainer minus the one callback that downloads CLIP (it names the EMA's classes for validation)."""

        def get_model(self, *a, **k):
            model = super().get_model(*a, **k)
            hooks = self.callbacks["on_pretrain_routine_end"]
            self.callbacks["on_pretrain_routine_end"] = [h for h in hooks if h.__module__ != WorldTrainer.__module__]
            return model

    times = {}
    model = YOLOWorld(f"yolov8{args.scale}-worldv2.yaml")
    model.add_callback("on_train_epoch_start", lambda t: times.__setitem__(t.epoch, time.perf_counter()))
    model.add_callback("on_train_epoch_end", lambda t: times.__setitem__(t.epoch, time.perf_counter() - times[t.epoch]))
    model.train(data=str(data), device="cpu", val=False, plots=False, amp=False, close_mosaic=0, project=str(root),
                name="ultralytics", verbose=False, trainer=OfflineWorldTrainer, **common)
    rows.append((f"ultralytics WorldTrainer yolov8{args.scale}-worldv2", times[max(times)]))

    reference = rows[-1][1]
    print(f"training speed: {args.images} images at {args.imgsz} px, batch {args.batch}, {args.workers} workers, "
          f"torch threads {threads} (ultralytics sets {torch.get_num_threads()}); second epoch timed, data loading included")
    for name, seconds in rows:
        print(f"  {name:45s} {args.images / seconds:6.2f} images/s   ({seconds:7.1f} s/epoch, "
              f"{reference / seconds:4.2f}x ultralytics' speed)")

def bench_train_step(args: argparse.Namespace) -> None:
    """One training step (forward, loss, backward) of ovdet and of ultralytics' WorldModel, same batch, interleaved."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import WorldModel

    import ovdet
    from ovdet.engine.loss import DetectionLoss

    threads = args.threads or 1  # as ultralytics trains on this machine
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    b, k, size = args.batch, 80, args.imgsz
    reference = WorldModel(f"yolov8{args.scale}-worldv2.yaml", nc=k, verbose=False).train()
    reference.args = get_cfg()  # its loss reads the box/cls/dfl gains from here
    ours = ovdet.build(f"yoloworldv2-{args.scale}", text_encoder="ViT-B-32-quickgelu").train()
    criterion = DetectionLoss()
    images = torch.rand(b, 3, size, size)
    text = torch.nn.functional.normalize(torch.randn(b, k, 512), dim=-1)
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(b * 5, 2, generator=gen) * size * 0.6
    wh = 40 + torch.rand(b * 5, 2, generator=gen) * size * 0.3
    image_index = torch.arange(b).repeat_interleave(5)[:, None].float()
    class_index = torch.arange(5).repeat(b)[:, None].float()
    targets = torch.cat([image_index, class_index, xy, xy + wh], 1)
    mask = torch.ones(b, k, dtype=torch.bool)
    batch = {"img": images, "batch_idx": image_index[:, 0], "cls": class_index, "txt_feats": text,
             "bboxes": torch.cat([xy + wh / 2, wh], 1) / size}  # fmt: skip

    def step_reference():
        reference.loss(batch)[0].sum().backward()
        reference.zero_grad(set_to_none=True)

    def step_ours():
        criterion(ours(images, text), targets, mask)[0].backward()
        ours.zero_grad(set_to_none=True)

    times = interleaved({"ultralytics WorldModel": step_reference, "ovdet": step_ours}, args.repeat, 1, threads)
    base = statistics.median(times["ultralytics WorldModel"])
    print(f"training step (forward, loss, backward), yolov8{args.scale}-worldv2 layout, batch {b} at {size}, "
          f"{threads} torch thread(s), median of {args.repeat}:")
    for name, values in times.items():
        print(f"  {name:25s} {statistics.median(values):6.2f} s   ({statistics.median(values) / base:4.2f}x)")


def bench_data(args: argparse.Namespace) -> None:
    """Milliseconds per training sample (decode, mosaic, augment) of ovdet's and ultralytics' datasets, same images."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    from ovdet.data.augment import AugmentConfig
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.data.training import TrainingSet

    torch.set_num_threads(args.threads or 1)
    root = Path(tempfile.mkdtemp(prefix="ovdet-bench-data-"))
    data = _make_yolo_dataset(root / "data", args.images, (480, 640))
    split = load_split(load_dataset_config(data), "train")
    prompts = [(name,) for name in split.names]
    index = {p[0]: i for i, p in enumerate(prompts)}
    datasets = {
        f"ovdet TrainingSet (cache_mb={args.cache_mb:g})": TrainingSet(
            split.records, prompts, index, imgsz=args.imgsz, augment=AugmentConfig(), cache_mb=args.cache_mb),
        "ultralytics YOLODataset": build_yolo_dataset(
            get_cfg(overrides={"imgsz": args.imgsz}), check_det_dataset(str(data))["train"], 8,
            check_det_dataset(str(data)), mode="train"),
    }  # fmt: skip
    rows = {}
    for epoch in range(args.epochs):  # the first pass is cold for both: ultralytics buffers, ovdet caches
        for name, dataset in datasets.items():
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            t = time.perf_counter()
            for i in range(len(dataset)):
                dataset[i]
            rows.setdefault(name, []).append((time.perf_counter() - t) / len(dataset) * 1000)
    print(f"training samples at {args.imgsz} px, mosaic on, {args.images} images, ms per sample by pass:")
    for name, values in rows.items():
        print(f"  {name:40s} " + "  ".join(f"{v:6.1f}" for v in values))



def moving_shapes_video(path: Path, frames: int, size: tuple[int, int], fps: float = 30.0) -> Path:
    """A synthetic clip (discs and squares moving over a gradient), written with cv2.VideoWriter as MPEG-4."""
    import cv2
    import numpy as np

    w, h = size
    background = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        image = background.copy()
        for k in range(6):
            x, y = (37 * k + 7 * i) % w, (53 * k + 3 * i) % h
            if k % 2:
                cv2.circle(image, (x, y), 20 + 4 * k, (40 * k, 90, 255 - 30 * k), -1)
            else:
                cv2.rectangle(image, (x, y), (x + 50, y + 35), (255 - 40 * k, 40 * k, 90), -1)
        writer.write(image)
    writer.release()
    return path


def bench_stream(args: argparse.Namespace) -> None:
    import cv2

    import ovdet
    from ovdet.engine.stream import run_stream

    torch.manual_seed(0)
    model = ovdet.build(args.model, args.text_encoder).set_classes(["person", "car", "dog", "red disc", "square"])
    folder = Path(tempfile.mkdtemp(prefix="ovdet-bench-stream-"))
    video = moving_shapes_video(folder / "clip.mp4", args.frames, (args.width, args.height))
    cap = cv2.VideoCapture(str(video))
    frames = []
    while (item := cap.read())[0]:
        frames.append(item[1])
    assert len(frames) == args.frames, (len(frames), args.frames)

    def model_only() -> None:  # the same per-frame forward passes on frames already in memory: no decoding at all
        for frame in frames:
            model.detect([frame], imgsz=args.imgsz)

    def stream() -> None:  # decoding on the reader thread, overlapped with inference
        n = sum(1 for _ in model.stream(video, imgsz=args.imgsz))
        assert n == len(frames)

    def stream_and_write() -> None:  # + drawing, MPEG-4 encoding and JSON lines on the writer thread
        run_stream(model, video, out=folder / "out.mp4", json_lines=folder / "out.jsonl", imgsz=args.imgsz,
                   progress=False)  # fmt: skip

    model_only()  # warm-up (allocator, kernels)
    modes = {"model only": model_only, "stream": stream, "stream + write": stream_and_write}
    runs: dict[str, list[float]] = {name: [] for name in modes}
    for r in range(args.repeat):  # interleaved, order rotated: a load change on a shared machine hits all alike
        names = list(modes)[r % 3 :] + list(modes)[: r % 3]
        for name in names:
            runs[name] += timed(modes[name])
    best = {name: len(frames) / min(times) for name, times in runs.items()}
    median = {name: len(frames) / statistics.median(times) for name, times in runs.items()}
    pair_ratios = [m / s for m, s in zip(runs["model only"], runs["stream"])]
    print(f"model: {args.model} (random weights), text encoder: {args.text_encoder}, imgsz {args.imgsz}, "
          f"torch threads: {torch.get_num_threads()}, cpu cores: {os.cpu_count()}")
    print(f"video: {len(frames)} frames {args.width}x{args.height} MPEG-4, {args.repeat} interleaved repeats")
    print(f"  {'':15s} {'best':>8s} {'median':>8s}  frames/s   best vs model only")
    for name in modes:
        print(f"  {name:15s} {best[name]:8.2f} {median[name]:8.2f}             {best[name] / best['model only']:.3f}")
    print(f"  stream / model only per repeat: median {statistics.median(pair_ratios):.3f} "
          f"(range {min(pair_ratios):.3f}-{max(pair_ratios):.3f})   target >= 0.95")
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
    if args.model != "yolov8-worldv2":  # YOLO-World v1 and YOLOE: tools/bench_families.py
        from bench_families import bench_family_predict

        return bench_family_predict(args)
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
    default = ovdet.from_ultralytics(checkpoint, trust_pickle=True)  # the caller vouches for --weights
    plain = ovdet.from_ultralytics(checkpoint, trust_pickle=True)
    plain.fast_predict = False  # the model itself: BatchNorm unfused, text unfolded
    fused = ovdet.from_ultralytics(checkpoint, trust_pickle=True).fuse()
    calibration = [image, cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "zidane.jpg"))]
    print(f"weights: {checkpoint.name if args.weights else f'random yolov8{args.scale}-worldv2 (BN stats from photos)'}"
          f", image: bus.jpg (810x1080), imgsz {imgsz}, torch threads {threads}, ONNX Runtime threads {threads}, "
          f"median of {args.repeat} interleaved runs after {args.warmup} warm-up runs")
    print(f"torch {torch.__version__}, ultralytics {ultralytics.__version__}, "
          f"onnxruntime {__import__('onnxruntime').__version__}, CPU: {os.cpu_count()} cores, clock: "
          f"{'CPU time of the calling thread' if CLOCK is time.thread_time else 'wall'}")

    runtime_path = default.export("onnx", tmp / "runtime.onnx", vocabulary="runtime", imgsz=imgsz)
    for label, names in (("80 COCO classes", coco_names()), ("1,203 LVIS classes", lvis_names())):
        gen = torch.Generator().manual_seed(1)
        emb = torch.nn.functional.normalize(torch.randn(len(names), 512, generator=gen), dim=-1)
        for model in (default, plain, fused):
            model.set_classes(names, embeddings=emb)
        theirs.model.txt_feats = plain.class_embeddings[None].clone()  # what YOLOWorld.set_classes would install
        theirs.model.names = dict(enumerate(names))
        theirs.model.model[-1].nc = len(names)
        theirs.predictor = None
        k = len(names)
        folded_path = plain.export("onnx", tmp / f"folded-{k}.onnx", imgsz=imgsz)
        int8_folded = plain.export("onnx", tmp / f"folded-{k}-int8.onnx", imgsz=imgsz, int8=True, calibration=calibration)
        int8_runtime = tmp / "runtime-int8.onnx"
        if not int8_runtime.exists():  # calibrated on the 80 classes; the graph takes any K
            plain.export("onnx", int8_runtime, vocabulary="runtime", imgsz=imgsz, int8=True, calibration=calibration)
        onnx_models = {}
        for key, path in (("runtime", runtime_path), ("folded", folded_path), ("runtime int8", int8_runtime),
                          ("folded int8", int8_folded)):  # fmt: skip
            onnx_models[key] = ovdet.load_onnx(path, threads=threads)
            if key.startswith("runtime"):
                onnx_models[key].set_classes(names, embeddings=emb.numpy())
        variants = {
            "ultralytics YOLOWorld.predict": lambda: theirs.predict(image, imgsz=imgsz, device="cpu", verbose=False),
            "ovdet predict (as loaded: default)": lambda: default.predict(image, imgsz=imgsz),
            "ovdet predict, fast_predict=False": lambda: plain.predict(image, imgsz=imgsz),
            "ovdet fuse() + predict": lambda: fused.predict(image, imgsz=imgsz),
            "ONNX Runtime, runtime vocabulary": lambda: onnx_models["runtime"].predict(image, imgsz=imgsz),
            "ONNX Runtime, folded": lambda: onnx_models["folded"].predict(image, imgsz=imgsz),
            "ONNX Runtime INT8, runtime vocabulary": lambda: onnx_models["runtime int8"].predict(image, imgsz=imgsz),
            "ONNX Runtime INT8, folded": lambda: onnx_models["folded int8"].predict(image, imgsz=imgsz),
        }
        reference = theirs.predict(image, imgsz=imgsz, device="cpu", verbose=False)[0]
        counts = {"ultralytics YOLOWorld.predict": len(reference.boxes)}
        counts.update({name: len(fn()[0]) for name, fn in list(variants.items())[1:]})
        times = interleaved(variants, args.repeat, args.warmup, threads)
        base = statistics.median(times["ultralytics YOLOWorld.predict"])
        best = min(times["ultralytics YOLOWorld.predict"])
        print(f"\npredict, {label}               median ms  vs ultralytics   best ms  vs ultralytics  detections")
        for name, t in times.items():
            ms = statistics.median(t)
            print(f"  {name:38s} {ms * 1e3:7.1f}   {ms / base:8.2f}x   {min(t) * 1e3:7.1f}   {min(t) / best:8.2f}x"
                  f"   {counts[name]:6d}")
        weights = sum(t.numel() * t.element_size() for t in [*default.parameters(), *default.buffers()])
        print(f"  fast path: folded copy {default._inference_copy.nbytes / 2**20:.1f} MiB beside the model's "
              f"{weights / 2**20:.1f} MiB of parameters and buffers")

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


def bench_int8(args: argparse.Namespace) -> None:
    """AP50 change and speed of INT8 against fp32 ONNX exports of the bundled model, on a fresh synthetic test split
    (seed unlike the training data's 0), calibrated on a fresh validation split of seen pairs."""
    os.environ["OVDET_CACHE"] = tempfile.mkdtemp(prefix="ovdet-bench-cache-")
    import ovdet
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.data.synthetic import write_dataset
    from ovdet.engine.evaluate import evaluate
    from ovdet.images import read_image

    threads = args.threads or torch.get_num_threads()
    root = Path(tempfile.mkdtemp(prefix="ovdet-bench-int8-"))
    write_dataset(root / "data", train=0, val=args.calibration, test=args.test, seed=args.seed, workers=2,
                  progress=False)  # fmt: skip
    data = load_dataset_config(root / "data" / "data.yaml")
    test = load_split(data, "test")
    model = ovdet.load()
    model.set_classes({n: list(data.texts.get(n, (n,))) for n in test.names})
    ovdet.export_text_encoder(model.text_encoder, root / "text_encoder.onnx")
    calibration = root / "data" / "val" / "images"
    paths = {}
    for vocabulary in ("runtime", "folded"):
        for int8 in (False, True):
            name = f"{vocabulary}{' int8' if int8 else ''}"
            t = time.perf_counter()
            paths[name] = model.export("onnx", root / f"{vocabulary}-{int(int8)}.onnx", vocabulary=vocabulary,
                                       int8=int8, calibration=calibration if int8 else None)  # fmt: skip
            print(f"export {name}: {time.perf_counter() - t:.1f} s")
    models = {name: ovdet.load_onnx(path, threads=threads, text_encoder=root / "text_encoder.onnx"
                                    if name.startswith("runtime") else None) for name, path in paths.items()}  # fmt: skip
    print(f"bundled model ({model.config.name}, imgsz {model.default_imgsz}), fresh synthetic test split: "
          f"{len(test.records)} images (seed {args.seed}), 64 classes; INT8 calibrated on {args.calibration} fresh "
          f"validation images; ONNX Runtime {threads} threads, torch {threads} threads")
    print(f"  {'model':22s} {'AP50':>7s} {'seen':>7s} {'held-out':>9s} {'AP':>7s}")
    for name, m in [("PyTorch (default)", model), *models.items()]:
        r = evaluate(m, test, texts=data.texts, group_by="held_out", progress=False)
        g = r["groups"]
        print(f"  {name:22s} {r['AP50']:7.4f} {g['held_out=False']['AP50']:7.4f} {g['held_out=True']['AP50']:9.4f} "
              f"{r['AP']:7.4f}")
    images = [read_image(str(r.path))[0] for r in test.records[: args.images]]
    variants = {name: (lambda m=m: m.detect(images)) for name, m in [("PyTorch (default)", model), *models.items()]}
    times = interleaved(variants, args.repeat, 1, threads)
    base = statistics.median(times["runtime"])
    print(f"latency: detect() on {len(images)} test images per call (batched by letterbox shape), per image, "
          f"median of {args.repeat}:")
    for name, t in times.items():
        ms = statistics.median(t) / len(images) * 1e3
        print(f"  {name:22s} {ms:7.2f} ms/image   {statistics.median(t) / base:5.2f}x fp32 runtime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: CPU time of the calling thread (with --threads 1), robust to a loaded machine")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("text", help="set_classes timing for the 1,203 LVIS names")
    p.add_argument("--text-encoder", default="ViT-B-32-quickgelu", help="spec; default: random-weight ViT-B/32")
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=bench_text)
    p = sub.add_parser("train", help="training images/s: ovdet vs ultralytics WorldTrainer")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scale", default="s", help="model size n/s/m/l/x (default s)")
    p.add_argument("--ovdet", nargs="+", default=None, help="ovdet configs to time (default ovdet-SCALE and yoloworldv2-SCALE)")
    p.set_defaults(func=bench_train)
    p = sub.add_parser("train-step", help="one training step: ovdet vs ultralytics WorldModel, same batch")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--scale", default="s", choices=list("nsmlx"))
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=bench_train_step)
    p = sub.add_parser("data", help="ms per training sample: ovdet TrainingSet vs ultralytics YOLODataset")
    p.add_argument("--images", type=int, default=32,
                   help="at most 64 keeps it like for like: ultralytics buffers min(images, 8 x batch 8) images")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--cache-mb", type=float, default=256)
    p.set_defaults(func=bench_data)
    p = sub.add_parser("stream", help="model.stream(video) vs model.detect on pre-decoded frames")
    p.add_argument("--model", default="ovdet-n", help="architecture config (random weights)")
    p.add_argument("--text-encoder", default="ViT-B-32-quickgelu", help="spec; default: random-weight ViT-B/32")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--repeat", type=int, default=12)
    p.set_defaults(func=bench_stream)
    p = sub.add_parser("predict", help="predict latency: ultralytics YOLOWorld vs ovdet (PyTorch, fused, ONNX Runtime)")
    p.add_argument("--scale", default="s", choices=list("nsmlx"), help="YOLO-World v2 scale for random weights")
    p.add_argument("--weights", help="a real ultralytics checkpoint of --model's layout you trust (unpickled)")
    p.add_argument("--model", default="yolov8-worldv2",
                   choices=["yolov8-worldv2", "yolov8s-world", "yoloe-v8s-seg", "yoloe-11s-seg", "yoloe-26s-seg"],
                   help="layout: YOLO-World v2 at --scale (default), or another family's s model")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (families; default 0.25)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.set_defaults(func=bench_predict)
    from bench_families import add_parsers

    add_parsers(sub)
    p = sub.add_parser("int8", help="INT8 vs fp32 ONNX exports of the bundled model: AP50 change and speed")
    p.add_argument("--test", type=int, default=600, help="fresh test images")
    p.add_argument("--calibration", type=int, default=100, help="fresh calibration images")
    p.add_argument("--seed", type=int, default=12, help="dataset seed (the bundled model trained on seed 0)")
    p.add_argument("--images", type=int, default=32, help="images timed per repeat")
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=bench_int8)
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        # one thread: torch, ONNX Runtime (intra_op_num_threads=1 runs on the caller) and ultralytics all compute on
        # the calling thread, so its CPU time is the work done, whatever other processes do to the wall clock
        if args.threads != 1:
            parser.error("--clock cpu needs --threads 1 (the work must run on the calling thread to be counted)")
        global CLOCK
        CLOCK = time.thread_time
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "ovdet", "unset") is None:
        args.ovdet = [f"ovdet-{args.scale}", f"yoloworldv2-{args.scale}"]
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
