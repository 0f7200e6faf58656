"""Forgetting benchmark: what fine-tuning on a custom dataset does to everything the dataset does not label.

    python tools/bench_forgetting.py            # 16 min on a shared 2-core machine; writes runs/bench_forgetting
    python tools/bench_forgetting.py --out runs/bf2 --distill 1.0 --modes full+distill
    python tools/bench_forgetting.py --out runs/bf-val --test-images 300 --test-seed 42   # the validation split

The "customer": the bundled default model (``ovdet.load()``, trained in neutral light) meets a style it never saw,
dim warm tungsten light (``SceneConfig(lighting="tungsten")``). The customer labels only 4 of the world's 64
colour-shape pairs (:data:`TUNED`); every other object in its images is left unlabelled, as in real custom data, so
plain fine-tuning learns those objects as background. Each mode fine-tunes the same starting model on the same images;
a fresh test split of the same style, labelled with all 64 pairs, gives pycocotools AP50 (multi-label NMS,
``conf=0.001``, as ``ovdet eval``; up to 100 detections per class and image, :data:`MAX_DET`) for (a) the 4 tuned pairs, (b) the 52 other seen pairs, (c) the 8 held-out pairs,
before and after. For ``prompts`` it also checks that every detection of the 60 untuned pairs is identical to the
starting model's. AP figures are deterministic; times are wall-clock on whatever else the machine was doing.

Folder (``--out``): a new or empty folder, or one this tool made (it then reuses what is finished: data, trained
runs, evaluations); anything else is refused before any work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# before torch loads (the ovdet imports below): waiting OpenMP threads sleep instead of spinning, as the ovdet command
# arranges, so a benchmark beside other work does not burn the cores it waits for
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("YOLO_OFFLINE", "1")

from ovdet.data.datasets import load_dataset_config, load_split  # noqa: E402
from ovdet.data.synthetic import DEFAULT_WORLD, SceneConfig, render_scene, write_dataset  # noqa: E402
from ovdet.engine.evaluate import evaluate  # noqa: E402
from ovdet.engine.settings import load_settings  # noqa: E402
from ovdet.engine.train import resume_settings, train  # noqa: E402
from ovdet.fileio import atomic_folder, atomic_write_text, check_output_dir, has_marker, write_marker  # noqa: E402

logger = logging.getLogger("bench_forgetting")
KIND = "bench_forgetting"
WORLD = DEFAULT_WORLD
# colours the warm light changes most (white turns orange, blue dark, yellow and orange closer), none held out
TUNED = (("white", "circle"), ("blue", "star"), ("yellow", "square"), ("orange", "triangle"))
LIGHT = SceneConfig(lighting="tungsten")
# detections kept per image: 100 per class, pycocotools' own limit per image and category, so the per-image cap
# (300 in ovdet eval, as ultralytics) never binds and a group's AP cannot depend on what the other groups detect
MAX_DET = 100 * len(WORLD.pairs)
GROUPS = {"tuned": "(a) 4 tuned pairs", "seen": "(b) 52 other seen pairs", "held_out": "(c) 8 held-out pairs"}
# label -> (settings, what the table calls it); lr0 as each mode needs it: a probe or prompts move further per step
MODES = {
    "full": ({"tune": "full", "distill": 0, "lr0": 0.001}, "`--tune full`, `distill=0` (plain)"),
    "full+distill": ({"tune": "full", "lr0": 0.001}, "**`--tune full`, distillation (the default)**"),
    "head": ({"tune": "head", "distill": 0, "lr0": 0.01}, "`--tune head`, `distill=0`"),
    "head+distill": ({"tune": "head", "lr0": 0.01}, "`--tune head`, distillation (the default)"),
    "prompts": ({"tune": "prompts", "lr0": 0.01}, "`--tune prompts`"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_forgetting", help="working folder (default runs/bench_forgetting)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    p.add_argument("--train-images", type=int, default=300, help="customer training images")
    p.add_argument("--test-images", type=int, default=500, help="fresh test images of the same style")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--distill", type=float, default=None, help="distillation weight (default: ovdet's default)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the customer's images and of training")
    p.add_argument("--test-seed", type=int, default=1,
                   help="seed of the test images (the default weight was chosen with --test-images 300 --test-seed 42)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------- data
def _customer_scene(index: int, seed: int):
    """One customer image: one or two tuned pairs among one to four other seen pairs, in tungsten light."""
    rng = np.random.default_rng([seed, 7, index])
    others = [p for p in WORLD.seen_pairs if p not in TUNED]
    objects = [TUNED[i] for i in rng.choice(len(TUNED), size=int(rng.integers(1, 3)))]
    objects += [others[i] for i in rng.choice(len(others), size=int(rng.integers(1, 5)))]
    order = rng.permutation(len(objects))
    return render_scene(WORLD, rng, objects=[objects[i] for i in order], config=LIGHT)


def write_customer(folder: Path, n: int, seed: int) -> Path:
    """The customer's dataset: COCO json that labels only the tuned pairs; every other object is unlabelled."""
    with atomic_folder(folder, owned=lambda f: (f / "data.yaml").is_file(), what="customer dataset") as tmp:
        (tmp / "images").mkdir()
        images, annotations = [], []
        for i in range(n):
            scene = _customer_scene(i, seed)
            name = f"{i:06d}.jpg"
            (tmp / "images" / name).write_bytes(scene.jpeg)
            h, w = scene.image.shape[:2]
            images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
            for o in scene.objects:
                if o.pair in TUNED:
                    x1, y1, x2, y2 = o.box
                    annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "iscrowd": 0, "area": o.area,
                                        "category_id": WORLD.category_id(o.pair), "bbox": [x1, y1, x2 - x1, y2 - y1]})
        coco = {"images": images, "annotations": annotations, "categories": WORLD.categories(TUNED)}
        atomic_write_text(tmp / "annotations.json", json.dumps(coco))
        texts = WORLD.texts(TUNED)
        atomic_write_text(tmp / "data.yaml", json.dumps({"train": {"images": "images", "annotations": "annotations.json"},
                                                          "texts": texts}, indent=1))  # fmt: skip
    return folder / "data.yaml"


def write_test(folder: Path, n: int, seed: int) -> Path:
    """A fresh test split in the same light, every object of all 64 pairs labelled, each category in its group."""
    data_yaml = write_dataset(folder, WORLD, train=0, val=0, test=n, seed=seed, config=LIGHT, progress=False)
    gt_path = folder / "test" / "annotations.json"
    gt = json.loads(gt_path.read_text())
    for c in gt["categories"]:
        pair = (c["color"], c["shape"])
        c["group"] = "tuned" if pair in TUNED else "held_out" if WORLD.is_held_out(pair) else "seen"
    atomic_write_text(gt_path, json.dumps(gt))
    return data_yaml


# ---------------------------------------------------------------------------------------------------- runs
def folder_name(label: str, args: argparse.Namespace) -> str:
    """A mode's run and evaluation folder: its label, plus the weight when ``--distill`` chose one."""
    distils = "distill" not in MODES[label][0] and label != "prompts"
    return f"{label}@{args.distill:g}" if distils and args.distill is not None else label


def fine_tune(work: Path, label: str, data_yaml: Path, args: argparse.Namespace) -> tuple[Path, dict]:
    """Fine-tune the bundled model in one mode (resuming an interrupted run); returns the model and its times."""
    run = work / "runs" / folder_name(label, args)
    overrides, _ = MODES[label]
    if args.distill is not None and folder_name(label, args) != label:
        overrides = {**overrides, "distill": args.distill}
    settings = load_settings(None, {
        "data": str(data_yaml), "model": "ovdet-synth", "out": str(run), "epochs": args.epochs, "imgsz": 256,
        "batch": 16, "nbs": 16, "workers": 0, "warmup_epochs": 1, "close_mosaic": 2, "max_vocab": 4,
        "seed": args.seed, "augment.hsv_h": 0, "augment.hsv_s": 0.3, "augment.hsv_v": 0.25, "augment.scale": 0.4,
        **overrides,
    })  # fmt: skip
    times_file = run / "bench_times.json"
    if times_file.is_file():
        return run / "last", json.loads(times_file.read_text())
    wall, cpu = time.time(), _cpu_seconds()
    if (run / "last").is_dir():
        train(resume_settings(run), resume=True, progress=False)
    else:
        train(settings, progress=False)
    times = {"wall_min": (time.time() - wall) / 60, "cpu_min": (_cpu_seconds() - cpu) / 60}
    atomic_write_text(times_file, json.dumps(times))  # the run is finished: its times are final
    return run / "last", times


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def evaluate_model(model_path: str | None, test_yaml: Path, out: Path) -> dict:
    """AP50 per group of a model on the test split (``model_path`` None: the starting model); cached in ``out``."""
    import ovdet

    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    model = ovdet.load(model_path)
    data = load_dataset_config(test_yaml)
    return evaluate(model, load_split(data, "test"), texts=data.texts, group_by="group", out_dir=out, progress=False,
                    max_det=MAX_DET)


def untuned_detections(folder: Path, test_yaml: Path) -> list:
    tuned_ids = {WORLD.category_id(p) for p in TUNED}
    predictions = json.loads((folder / "predictions.json").read_text())
    return sorted((p["image_id"], p["category_id"], p["bbox"], p["score"]) for p in predictions
                  if p["category_id"] not in tuned_ids)  # fmt: skip


def table(rows: list[dict]) -> str:
    start = rows[0]
    lines = ["| model | " + " | ".join(GROUPS.values()) + " | training: wall (CPU) |", "| --- " * 5 + "|"]
    for row in rows:
        cells = []
        for g in GROUPS:
            value = row["ap50"][g]
            delta = value - start["ap50"][g]
            cells.append(f"{value:.3f}" if row is start else f"{value:.3f} ({'+' if delta >= 0 else '−'}{abs(delta):.3f})")
        time_cell = f"{row['times']['wall_min']:.1f} min ({row['times']['cpu_min']:.1f} CPU)" if row.get("times") else ""
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {time_cell} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"unknown modes {', '.join(unknown)}; choose from {', '.join(MODES)}", file=sys.stderr)
        return 2
    work = Path(args.out)
    try:  # only a folder this tool made (or a new or empty one) is written into
        check_output_dir(work, what="benchmark folder", owned=has_marker(KIND), fix="choose another --out")
    except Exception as e:
        print(str(e), file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    work.mkdir(parents=True, exist_ok=True)
    if not has_marker(KIND)(work):
        write_marker(work, KIND)
    t0 = time.time()
    customer = work / "customer" / "data.yaml"
    if not customer.is_file():
        write_customer(work / "customer", args.train_images, args.seed)
    test_yaml = work / "test" / "data.yaml"
    if not test_yaml.is_file():
        write_test(work / "test", args.test_images, args.test_seed)

    rows = [{"label": "start", "name": "starting model (bundled `ovdet-synth`)"}]
    rows[0]["metrics"] = evaluate_model(None, test_yaml, work / "eval" / "start")
    for label in modes:
        model_path, times = fine_tune(work, label, customer, args)
        metrics = evaluate_model(str(model_path), test_yaml, work / "eval" / folder_name(label, args))
        name = MODES[label][1]
        if folder_name(label, args) != label:  # another weight than the default
            name = f"`--tune {MODES[label][0]['tune']}`, `distill={args.distill:g}`"
        rows.append({"label": label, "name": name, "metrics": metrics, "times": times})
    for row in rows:
        row["ap50"] = {g: row["metrics"]["groups"][f"group={g}"]["AP50"] for g in GROUPS}
    text = table(rows)
    checks = {}
    by = {r["label"]: r for r in rows}
    if "prompts" in by:
        same = untuned_detections(work / "eval" / "prompts", test_yaml) == untuned_detections(work / "eval" / "start", test_yaml)
        checks["prompts: detections of the 60 untuned pairs identical to the starting model's"] = same
    if "full" in by and "full+distill" in by:
        full, rec, start = by["full"]["ap50"], by["full+distill"]["ap50"], rows[0]["ap50"]
        checks["recommended (a) within 0.02 of plain full"] = rec["tuned"] >= full["tuned"] - 0.02
        checks["recommended (b), (c) drop at most 0.03"] = all(rec[g] >= start[g] - 0.03 for g in ("seen", "held_out"))
    summary = {"rows": [{k: r[k] for k in ("label", "name", "ap50") if k in r} | {"times": r.get("times")} for r in rows],
               "checks": checks, "minutes": round((time.time() - t0) / 60, 1), "command": " ".join(sys.argv)}
    atomic_write_text(work / "results.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(work / "table.md", text + "\n")
    print(text)
    for name, ok in checks.items():
        print(f"- {name}: {ok}")
    print(f"({summary['minutes']} min; {work / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
