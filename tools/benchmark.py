"""Benchmarks, each printing side-by-side figures measured in one run.

    python tools/benchmark.py text      # set_classes for the 1,203 LVIS names: cold, warm, vs untrimmed encoding

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
    print(f"set_classes, 1,203 LVIS names")
    print(f"  cold (empty cache)       {cold:8.2f} s   target <= 12 s")
    print(f"  warm (in memory)         {statistics.median(warm_memory) * 1e3:8.1f} ms  target <= 50 ms")
    print(f"  warm (from disk)         {statistics.median(warm_disk) * 1e3:8.1f} ms")
    print(f"  untrimmed 77-token pass  {full:8.2f} s   -> trimming is {full / cold:.1f}x faster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("text", help="set_classes timing for the 1,203 LVIS names")
    p.add_argument("--text-encoder", default="ViT-B-32-quickgelu", help="spec; default: random-weight ViT-B/32")
    p.add_argument("--repeat", type=int, default=5)
    p.set_defaults(func=bench_text)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
