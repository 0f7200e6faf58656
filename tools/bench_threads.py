"""Stream throughput by CPU threads and OpenMP wait policy, on an idle machine and beside a busy neighbour.

    python tools/bench_threads.py                 # the bundled default model, a 640x360 clip, imgsz 640
    python tools/bench_threads.py --seconds 20    # longer runs per cell

Why: with another busy process on a 2-core machine, ``ovdet stream`` once fell from ~50 FPS to under 1 FPS: an
OpenMP thread that waits for the others spins on its core, and when a neighbour holds that core the spinning threads
steal the time the working ones need. Each cell below runs ``model.stream(video)`` in a fresh process (OpenMP reads
``OMP_WAIT_POLICY`` once, when torch loads) for ``--seconds``; the neighbour is another PyTorch process doing small
matrix products on all cores, the worst case measured (a plain Python busy loop hurts far less). The CLI runs with
``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it, and the table shows why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = r"""
import json, os, sys, time
import torch, ovdet
torch.set_num_threads(int(sys.argv[2]))
model = ovdet.load().set_classes(["red circle", "blue ring", "purple star", "yellow cross", "green square"])
for _ in model.stream(sys.argv[1], imgsz=640):  # warm-up pass over the clip
    pass
frames, start = 0, time.perf_counter()
while time.perf_counter() - start < float(sys.argv[3]):
    for _ in model.stream(sys.argv[1], imgsz=640):
        frames += 1
print(json.dumps({"fps": frames / (time.perf_counter() - start)}))
"""

NEIGHBOUR = r"""
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(64, 64)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    for _ in range(100):
        a = torch.tanh(a @ a)
"""


def make_clip(path: Path, frames: int = 60) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 360))
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = np.full((360, 640, 3), 30, np.uint8)
        cv2.circle(image, (40 + 8 * i, 120), 40, (40, 40, 230), -1)
        cv2.rectangle(image, (500 - 6 * i, 200), (580 - 6 * i, 280), (0, 200, 0), -1)
        image = cv2.add(image, rng.integers(0, 20, image.shape, dtype=np.uint8))
        writer.write(image)
    writer.release()
    return path


def run_cell(clip: Path, threads: int, policy: str | None, seconds: float, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    neighbour = None
    if busy:
        neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, str(os.cpu_count() or 2), str(seconds + 60)])
        time.sleep(1.0)
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, str(clip), str(threads), str(seconds)],
                             capture_output=True, text=True, env=env, check=True).stdout  # fmt: skip
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return json.loads(out.strip().splitlines()[-1])["fps"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per cell")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default: 1 and all cores)")
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    thread_counts = args.threads or sorted({1, cores})
    clip = make_clip(Path(tempfile.mkdtemp(prefix="ovdet-threads-")) / "clip.mp4")
    print(f"ovdet stream, default model, 640x360 clip at imgsz 640, {cores} cores; frames/s over {args.seconds:g} s")
    print(f"{'threads':>7s}  {'OMP_WAIT_POLICY':<16s} {'idle':>7s} {'busy neighbour':>15s}")
    for threads in thread_counts:
        for policy in (None, "PASSIVE"):
            idle = run_cell(clip, threads, policy, args.seconds, busy=False)
            busy = run_cell(clip, threads, policy, args.seconds, busy=True)
            print(f"{threads:>7d}  {policy or '(unset)':<16s} {idle:7.1f} {busy:15.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
