"""Generate the synthetic open-vocabulary dataset, or the README demo image.

    python tools/make_synthetic.py data/synthetic --train 3000 --val 200 --test 500 --seed 0 --workers 2
    python tools/make_synthetic.py --demo assets/demo.jpg

The dataset folder holds data.yaml (what `ovdet train` / `ovdet eval` read), world.json and COCO-format splits; see
ovdet/data/synthetic/dataset.py. The demo is one scene with several seen pairs (a red circle and a purple star among
them) and held-out pairs (a blue ring and a yellow cross), which no training image ever shows.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2

from ovdet.data.synthetic import DEFAULT_WORLD, SceneConfig, render_scene, write_dataset
from ovdet.errors import OVDetError
from ovdet.fileio import atomic_write_bytes

DEMO_OBJECTS = [("green", "triangle"), ("blue", "ring"), ("red", "circle"), ("purple", "star"), ("yellow", "cross"),
                ("white", "hexagon"), ("orange", "square")]
DEMO_CONFIG = SceneConfig(long_side=(480, 480), aspect=(1.5, 1.5), object_size=(0.2, 0.3), blur=0.0, noise=0.0,
                          jpeg_quality=(88, 88), backgrounds=("gradient", "blobs", "noise"), tries=60)


def write_demo(path: Path, seed: int) -> None:
    """Render the first seed (from ``seed`` on) whose scene shows every demo object whole, and write it as JPEG."""
    for s in range(seed, seed + 1000):
        scene = render_scene(DEFAULT_WORLD, s, objects=DEMO_OBJECTS, config=DEMO_CONFIG)
        if len(scene.objects) == len(DEMO_OBJECTS) and min(o.visible for o in scene.objects) >= 0.99:
            break
    held = [DEFAULT_WORLD.category_name(o.pair) for o in scene.objects if DEFAULT_WORLD.is_held_out(o.pair)]
    atomic_write_bytes(path, scene.jpeg or cv2.imencode(".jpg", scene.image)[1].tobytes())
    print(f"{path}: seed {s}, {scene.image.shape[1]}x{scene.image.shape[0]}, held-out pairs shown: {', '.join(held)}")
    print(f"caption: {scene.caption}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, help="dataset folder to create")
    parser.add_argument("--train", type=int, default=3000, help="training images (seen pairs only)")
    parser.add_argument("--val", type=int, default=200, help="validation images (seen pairs only)")
    parser.add_argument("--test", type=int, default=500, help="test images (all pairs, held-out ones included)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it holds a previous dataset")
    parser.add_argument("--demo", type=Path, metavar="JPG", help="also (or only) write the demo image here")
    args = parser.parse_args(argv)
    if args.out is None and args.demo is None:
        parser.error("give a dataset folder OUT, or --demo JPG")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.demo is not None:
            write_demo(args.demo, args.seed)
        if args.out is not None:
            start = time.perf_counter()
            data = write_dataset(args.out, train=args.train, val=args.val, test=args.test, seed=args.seed,
                                 workers=args.workers, overwrite=args.overwrite)
            total = args.train + args.val + args.test
            seconds = time.perf_counter() - start
            print(f"{data}: {total} images in {seconds:.1f} s ({total / seconds:.0f} images/s, {args.workers} workers)")
    except OVDetError as e:
        print(f"make_synthetic: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
