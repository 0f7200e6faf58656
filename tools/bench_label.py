"""``ovdet label`` throughput: against ``ovdet predict`` on the same images, and the Ray engine against the local one.

    python tools/bench_label.py overhead --images 240 --repeat 7           # label / predict, whole commands
    python tools/bench_label.py overhead --images 120 --imgsz 640 --repeat 5
    python tools/bench_label.py ray --images 1200                          # local engine vs Ray, 2 CPU actors

``overhead`` runs the two commands as a user would (fresh processes, the bundled model, ``--batch 8 --threads 1``),
interleaved ``--repeat`` times so that a change in machine load hits both, and reports the median wall time of each
and their ratio (target: label / predict <= 1.05). ``predict`` gets the same prompts as classes (the same vocabulary
and forward pass), prints its detections to /dev/null and writes nothing; ``label`` writes the whole dataset (journal,
links, YOLO and COCO files, summary; no contact sheet, which is a fixed cost of ~0.1 s). ``ray`` labels the same
images with the local engine (``--threads`` 1 and 2) and with ``--engine ray --actors 2`` (one thread each) on a
local Ray, and checks that both give the same records. Images are synthetic scenes (``ovdet.data.synthetic``), 192-384
px. Timings depend on the machine and its load: take them on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = ["red circle", "blue circle", "green circle", "red star", "blue star", "yellow star", "orange square",
           "purple triangle"]  # fmt: skip
ONTOLOGY = "circle=red circle|blue circle|green circle, star=red star|blue star|yellow star, square=orange square"
NEGATIVE = "purple triangle"


def write_images(folder: Path, n: int) -> None:
    import cv2

    from ovdet.data.synthetic import DEFAULT_WORLD, render_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"scene_{i:05d}.jpg"), render_scene(DEFAULT_WORLD, 10_000 + i).image)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def overhead(args: argparse.Namespace, work: Path) -> dict:
    images = work / "images"
    write_images(images, args.images)
    ovdet = [sys.executable, "-m", "ovdet"]
    common = ["--batch", "8", "--threads", str(args.threads)] + (["--imgsz", str(args.imgsz)] if args.imgsz else [])
    predict = [*ovdet, "predict", str(images), "--classes", ", ".join(PROMPTS), *common]
    times: dict[str, list[float]] = {"predict": [], "label": []}
    for i in range(args.repeat + 1):  # the first round warms the file cache and is not counted
        out = work / f"ds{i}"
        label = [*ovdet, "label", str(images), "--classes", ONTOLOGY, "--negative", NEGATIVE, "--out", str(out),
                 "--samples", "0", *common]  # fmt: skip
        t_predict, t_label = _timed(predict), _timed(label)
        shutil.rmtree(out)
        if i:
            times["predict"].append(t_predict)
            times["label"].append(t_label)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"images": args.images, "imgsz": args.imgsz or "model's (256)", "predict_s": round(med["predict"], 3),
            "label_s": round(med["label"], 3), "label/predict": round(med["label"] / med["predict"], 3),
            "runs": {k: [round(t, 3) for t in v] for k, v in times.items()}}  # fmt: skip


def ray_vs_local(args: argparse.Namespace, work: Path) -> dict:
    import ray

    from ovdet.engine.label import label

    images = work / "images"
    write_images(images, args.images)
    rows = {}
    for name, kwargs in (("local, 1 thread", {"threads": 1}), ("local, 2 threads", {"threads": 2}),
                         ("ray, 2 actors x 1 thread", {"engine": "ray", "actors": 2, "threads": 1})):  # fmt: skip
        if kwargs.get("engine") == "ray":
            start = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            init_s = time.perf_counter() - start
        start = time.perf_counter()
        summary = label(images, ONTOLOGY, negative=NEGATIVE, out=work / name.replace(" ", "_"), samples=0, **kwargs)
        wall = time.perf_counter() - start
        rows[name] = {"wall_s": round(wall, 2), "images_per_s": round(summary.images / wall, 1), "boxes": summary.boxes}
        if kwargs.get("engine") == "ray":
            rows[name]["ray_init_s"] = round(init_s, 2)
            ray.shutdown()
    runs = [_records(work / n.replace(" ", "_")) for n in rows]
    return {"images": args.images, "engines": rows, **_agreement(runs[0], runs[1:])}


def _records(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def _agreement(first: dict[str, dict], others: list[dict[str, dict]]) -> dict:
    """Whether every run labelled the same images with the same classes, boxes within 0.02 px and scores within 2e-4
    (records keep 0.01 px and 1e-5, and float rounding differs across thread counts and processes, so a value at a
    rounding boundary may land on either side), with the largest differences seen."""
    box, score, same = 0.0, 0.0, True
    for other in others:
        same &= other.keys() == first.keys()
        for key in first.keys() & other.keys():
            a, b = first[key], other[key]
            if a["classes"] != b["classes"]:
                same = False
                continue
            if a["boxes"]:
                box = max(box, float(np.abs(np.subtract(a["boxes"], b["boxes"])).max()))
                score = max(score, float(np.abs(np.subtract(a["scores"], b["scores"])).max()))
    return {"same_records": same and box <= 0.02 and score <= 2e-4, "max_box_diff_px": round(box, 4),
            "max_score_diff": round(score, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("overhead", "ray"))
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="ovdet-bench-label-") as tmp:
        result = (overhead if args.what == "overhead" else ray_vs_local)(args, Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
