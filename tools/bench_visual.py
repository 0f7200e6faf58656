"""Visual prompts against text prompts on the synthetic world: AP50 with classes given by 1, 4 or 16 example boxes.

    python tools/bench_visual.py --threads 1

For each of the 64 colour–shape pairs, 16 reference scenes are rendered with ``ovdet.data.synthetic`` (seed
``--ref-seed``, unlike the training data's 0 and the test split's ``--seed``), each holding one example of the pair
among 0–4 other objects; the example's box is its visible-pixel box. Each class is then given by 1, 4 or all 16 of
those examples (one ``VisualPrompt`` per reference image, so a class is the mean over separate images), and the model
is evaluated (``ovdet.engine.evaluate``: pycocotools, multi-label, conf 0.001) on a fresh test split with that
vocabulary, against the same model with the text vocabulary (names and synonyms). 1 and 4 examples are averaged over
``--draws`` disjoint draws of the 16 references (their range is printed too). Seen (56) and held-out (8) pairs are
reported apart. AP is deterministic; no timing is taken.

Prints one markdown table (the one in README). ``--topk`` and ``--keep-shared`` are the readout's ablations (README):
read every anchor inside the box (``--topk 0``) or any other number of them instead of the assigner's 10, and keep the
image's shared direction instead of projecting it out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REFERENCES = 16  # reference scenes per pair: the largest example count


def reference_examples(world, seed: int, per_pair: int = REFERENCES) -> dict[str, list[tuple[np.ndarray, tuple]]]:
    """``{category name: [(image, box), ...]}``: ``per_pair`` scenes per pair, each holding one example of it."""
    from ovdet.data.synthetic import render_scene

    examples: dict[str, list] = {}
    for p, pair in enumerate(world.pairs):
        found: list = []
        attempt = 0
        while len(found) < per_pair:
            rng = np.random.default_rng([seed, p, attempt])
            attempt += 1
            others = [world.pairs[i] for i in rng.integers(0, len(world.pairs), int(rng.integers(0, 5)))]
            others = [o for o in others if o != pair]
            order = others[:]
            order.insert(int(rng.integers(0, len(others) + 1)), pair)  # anywhere in the paint order: may be occluded
            scene = render_scene(world, rng, objects=order)
            mine = [o for o in scene.objects if (o.color, o.shape) == pair]
            if len(mine) == 1:  # placed (an object that does not fit is left out)
                found.append((scene.image, tuple(mine[0].box)))
        examples[world.category_name(pair)] = found
    return examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a saved model folder or weights name (default: the bundled model)")
    p.add_argument("--test", type=int, default=600, help="test images (default 600)")
    p.add_argument("--seed", type=int, default=12, help="test split seed (the bundled model trained on seed 0)")
    p.add_argument("--ref-seed", type=int, default=77, help="seed of the reference scenes")
    p.add_argument("--draws", type=int, default=4, help="disjoint draws averaged for 1 and 4 examples (default 4)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--work", default=None, help="folder for the test split (default: a temporary one)")
    p.add_argument("--topk", type=int, default=None, help="ablation: anchors read per example (0: all inside the box)")
    p.add_argument("--keep-shared", action="store_true", help="ablation: keep the image's shared direction")
    args = p.parse_args()
    if args.draws * 4 > REFERENCES:
        p.error(f"--draws at most {REFERENCES // 4}: draws of 4 examples must be disjoint among {REFERENCES}")
    os.environ.setdefault("OVDET_CACHE", tempfile.mkdtemp(prefix="ovdet-bench-cache-"))
    if args.threads:
        torch.set_num_threads(args.threads)
    import ovdet
    from ovdet.data.datasets import load_dataset_config, load_split
    from ovdet.data.synthetic import DEFAULT_WORLD, write_dataset
    from ovdet.engine.evaluate import evaluate
    from ovdet.model import visual
    from ovdet.prompts import VisualPrompt

    if args.topk is not None:
        visual.READOUT_TOPK = args.topk or None
    visual.READOUT_REMOVES_SHARED = not args.keep_shared

    start = time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix="ovdet-bench-visual-"))
    data_yaml = work / "data" / "data.yaml"
    if not data_yaml.exists():
        write_dataset(work / "data", train=0, val=0, test=args.test, seed=args.seed, workers=2, progress=False)
    data = load_dataset_config(data_yaml)
    test = load_split(data, "test")
    model = ovdet.load(args.model) if args.model else ovdet.load()
    examples = reference_examples(DEFAULT_WORLD, args.ref_seed)
    held_out = {DEFAULT_WORLD.category_name(pair) for pair in DEFAULT_WORLD.held_out_pairs}
    print(f"model {model.config.name} (imgsz {model.default_imgsz}); test split: {len(test.records)} images (seed "
          f"{args.seed}), 64 classes ({len(held_out)} held out); references: {REFERENCES} scenes per pair (seed "
          f"{args.ref_seed}); readout: top {visual.READOUT_TOPK or 'all'} anchors, shared direction "
          f"{'removed' if visual.READOUT_REMOVES_SHARED else 'kept'}", file=sys.stderr)  # fmt: skip

    def run(texts: dict) -> tuple[float, float]:
        r = evaluate(model, test, texts=texts, group_by="held_out", progress=False)
        return r["groups"]["held_out=False"]["AP50"], r["groups"]["held_out=True"]["AP50"]

    rows = {"text": [run(data.texts)]}
    for n in (1, 4, REFERENCES):
        draws = 1 if n == REFERENCES else args.draws
        rows[n] = []
        for d in range(draws):
            prompts = {name: [VisualPrompt(image, box) for image, box in refs[d * n : (d + 1) * n]]
                       for name, refs in examples.items()}  # fmt: skip
            rows[n].append(run(prompts))
            print(f"  {n} example(s), draw {d + 1}: seen {rows[n][-1][0]:.4f}, held-out {rows[n][-1][1]:.4f} "
                  f"({time.time() - start:.0f} s)", file=sys.stderr)  # fmt: skip
    text_seen, text_held = rows["text"][0]
    print(f"\n| prompts per class | AP50 seen ({64 - len(held_out)} pairs) | AP50 held-out ({len(held_out)} pairs) "
          "| gap to text (seen / held-out) |")
    print("| --- | --- | --- | --- |")
    print(f"| text (names and synonyms) | {text_seen:.3f} | {text_held:.3f} | |")
    for n in (1, 4, REFERENCES):
        seen, held = np.array(rows[n]).T
        spread = lambda v: f" ({v.min():.3f}–{v.max():.3f})" if len(v) > 1 else ""  # noqa: E731
        label = f"{n} example{'s' if n > 1 else ''}" + (f", mean of {len(seen)} draws" if len(seen) > 1 else "")
        print(f"| {label} | {seen.mean():.3f}{spread(seen)} | {held.mean():.3f}{spread(held)} | "
              f"{seen.mean() - text_seen:+.3f} / {held.mean() - text_held:+.3f} |")
    print(f"\n({time.time() - start:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
