"""Reproduce ovdet's default model: a synthetic world, a tiny CLIP trained on it, a detector trained against it.

    python tools/train_default.py                      # 2 CPU cores: see README for the time it takes
    python tools/train_default.py --device cuda        # same recipe on a GPU
    python tools/train_default.py --resume             # continue an interrupted run where it stopped

Stages, each skipped on --resume once its output exists (the detector stage resumes mid-run from its last epoch):

1. data      ``WORK/data``: synthetic scenes (COCO json, captions, ``data.yaml``, ``world.json``); train and val never
             show a held-out colour–shape pair.
2. clip      ``WORK/clip``: a tiny CLIP (open_clip text transformer + the detector's backbone as image tower) trained
             on crops of seen pairs; its text tower becomes the frozen text encoder.
3. init      ``WORK/init``: the detector with the CLIP image tower's backbone and the CLIP text encoder.
4. detector  ``WORK/detector``: ``ovdet train`` on the synthetic data (seen pairs only).
5. eval      ``WORK/eval``: COCO AP on a fresh test split with a vocabulary of all 64 pairs, split into seen and
             held-out pairs.
6. package   ``--out`` (default ``weights/ovdet-synth``): the best model stored as float16, ``world.json`` beside it,
             its metrics in ``metrics.json`` (measured on the packaged weights), example images in ``assets/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package

import tiny_clip  # noqa: E402

from ovdet.data.datasets import load_dataset_config, load_split  # noqa: E402
from ovdet.data.synthetic import DEFAULT_WORLD, World, render_scene, write_dataset  # noqa: E402
from ovdet.engine.evaluate import evaluate  # noqa: E402
from ovdet.engine.settings import load_settings  # noqa: E402
from ovdet.engine.train import resume_settings, train  # noqa: E402
from ovdet.fileio import atomic_write_text  # noqa: E402
from ovdet.model import build_detector, load_config, load_detector  # noqa: E402
from ovdet.text import TextEncoder  # noqa: E402

logger = logging.getLogger("train_default")
ROOT = Path(__file__).resolve().parent.parent
NAME = "ovdet-synth"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/default", help="working folder for every stage (default runs/default)")
    p.add_argument("--out", default=str(ROOT / "weights" / NAME), help="where the packaged model goes")
    p.add_argument("--examples", default=str(ROOT / "assets" / "examples"), help="where example images go")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes for the detector")
    p.add_argument("--data-workers", type=int, default=2, help="processes rendering the synthetic data")
    p.add_argument("--resume", action="store_true", help="continue in --work, skipping finished stages")
    p.add_argument("--seed", type=int, default=0)
    # the budget knobs; the defaults are the shipped recipe
    p.add_argument("--train-images", type=int, default=3000)
    p.add_argument("--val-images", type=int, default=200)
    p.add_argument("--test-images", type=int, default=600)
    p.add_argument("--clip-steps", type=int, default=2500)
    p.add_argument("--clip-crops", type=int, default=120, help="rendered crops per seen pair for CLIP")
    p.add_argument("--config", default="ovdet-n", help="detector architecture (default ovdet-n)")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr0", type=float, default=0.002)
    return p.parse_args(argv)


def stage_data(args: argparse.Namespace, work: Path) -> Path:
    data_yaml = work / "data" / "data.yaml"
    if data_yaml.is_file():
        logger.info("data: %s exists", data_yaml)
        return data_yaml
    return write_dataset(work / "data", DEFAULT_WORLD, train=args.train_images, val=args.val_images,
                         test=args.test_images, seed=args.seed, workers=args.data_workers)  # fmt: skip


def stage_clip(args: argparse.Namespace, work: Path, world: World) -> dict:
    metrics_file = work / "clip" / "metrics.json"
    if metrics_file.is_file():
        logger.info("clip: %s exists", metrics_file)
        return json.loads(metrics_file.read_text())
    scale = load_config(args.config).scale
    return tiny_clip.train_tiny_clip(world, work / "clip", scale=scale, steps=args.clip_steps,
                                     per_pair=args.clip_crops, device=args.device, seed=args.seed)  # fmt: skip


def stage_init(args: argparse.Namespace, work: Path) -> Path:
    """The detector to train: architecture at the recipe's size, CLIP text encoder, CLIP-pretrained backbone."""
    from safetensors.torch import load_file

    init = work / "init"
    if (init / "config.json").is_file():
        return init
    config = dataclasses.replace(load_config(args.config), name=f"{NAME}-{args.config.removeprefix('ovdet-')}",
                                 imgsz=args.imgsz)  # fmt: skip
    torch.manual_seed(args.seed)
    model = build_detector(config, text_encoder=TextEncoder(str(work / "clip" / "text")))
    model.backbone.load_state_dict(load_file(str(work / "clip" / "image" / "backbone.safetensors")))
    model.save(init)
    return init


def detector_settings(args: argparse.Namespace, work: Path, data_yaml: Path, init: Path):
    return load_settings(None, {
        "data": str(data_yaml), "model": str(init), "out": str(work / "detector"), "epochs": args.epochs,
        "imgsz": args.imgsz, "batch": args.batch, "device": args.device, "workers": args.workers, "lr0": args.lr0,
        "warmup_epochs": 1, "close_mosaic": max(args.epochs // 6, 1), "max_vocab": 64, "seed": args.seed,
        "nbs": args.batch, "ema_tau": 500,
        # colours are part of the class names: never shift hue; brightness/saturation only a little
        "augment.hsv_h": 0, "augment.hsv_s": 0.3, "augment.hsv_v": 0.25, "augment.scale": 0.4,
    })  # fmt: skip


def stage_detector(args: argparse.Namespace, work: Path, data_yaml: Path, init: Path) -> Path:
    run = work / "detector"
    if (run / "last").is_dir():
        done = json.loads((run / "last" / "train_state.json").read_text())["epoch"] + 1
        if done >= args.epochs:
            logger.info("detector: %s finished %d epochs", run, done)
            return run
        return train(resume_settings(run, device=args.device, workers=args.workers), resume=True)
    return train(detector_settings(args, work, data_yaml, init))


def stage_eval(model, data_yaml: Path, out: Path | None) -> dict:
    data = load_dataset_config(data_yaml)
    return evaluate(model, load_split(data, "test"), texts=data.texts, group_by="held_out", out_dir=out)


def summary(metrics: dict) -> dict:
    groups = metrics["groups"]
    return {
        "all": {k: round(metrics[k], 4) for k in ("AP", "AP50")},
        "seen": {k: round(groups["held_out=False"][k], 4) for k in ("AP", "AP50")},
        "held_out": {k: round(groups["held_out=True"][k], 4) for k in ("AP", "AP50")},
    }


def stage_package(args: argparse.Namespace, work: Path, data_yaml: Path, world: World, clip_metrics: dict) -> dict:
    from ovdet.model.serialization import save_detector

    model = load_detector(work / "detector" / "best")
    out = Path(args.out)
    recipe = "python tools/train_default.py " + " ".join(sys.argv[1:])

    def extras(folder: Path) -> None:
        (folder / "world.json").write_text(world.to_json())

    metadata = {"recipe": recipe.strip(), "clip": clip_metrics, "description": (
        "A model of a synthetic world (coloured shapes) that proves the open-vocabulary mechanism; "
        "not a real-world detector.")}  # fmt: skip
    save_detector(model, out, metadata=metadata, extra=extras, half=True)
    packaged = load_detector(out)  # what users get: measure that, float16 round trip included
    metrics = stage_eval(packaged, data_yaml, work / "eval-packaged")
    table = summary(metrics)
    atomic_write_text(out / "metrics.json", json.dumps({"test": table, "clip": clip_metrics, "recipe": recipe.strip()}, indent=2) + "\n")
    write_examples(packaged, world, Path(args.examples))
    return table


def write_examples(model, world: World, folder: Path) -> None:
    """A few fresh scenes with held-out pairs in them, predicted with a vocabulary of all 64 pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    model.set_classes({world.category_name(p): world.prompts(p) for p in world.pairs})
    for i in range(4):
        held = [world.held_out_pairs[(2 * i) % len(world.held_out_pairs)], world.held_out_pairs[(2 * i + 1) % 8]]
        seen = [world.seen_pairs[(7 * i + j) % len(world.seen_pairs)] for j in range(2)]
        scene = render_scene(world, 1000 + i, objects=held + seen)
        (result,) = model.predict(scene.image, conf=0.4)
        result.save(folder / f"example_{i}.jpg")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    if work.exists() and any(work.iterdir()) and not args.resume:
        print(f"{work} is not empty: pass --resume to continue it, or choose another --work", file=sys.stderr)
        return 2
    times = {}
    t = time.time()
    data_yaml = stage_data(args, work)
    world = World.load(work / "data" / "world.json")
    times["data"] = time.time() - t
    t = time.time()
    clip_metrics = stage_clip(args, work, world)
    times["clip"] = time.time() - t
    t = time.time()
    init = stage_init(args, work)
    stage_detector(args, work, data_yaml, init)
    times["detector"] = time.time() - t
    t = time.time()
    table = stage_package(args, work, data_yaml, world, clip_metrics)
    times["eval+package"] = time.time() - t
    print(json.dumps({"test": table, "clip": clip_metrics, "minutes": {k: round(v / 60, 1) for k, v in times.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
