"""``ovdet train``: train or fine-tune a detector on a dataset YAML (single process, or under torchrun)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import ConfigError
from .common import positive_int

HELP = "train or fine-tune a detector (torchrun --nproc_per_node K -m ovdet train ... for several processes)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help=HELP, description=HELP)
    p.add_argument("--data", help="dataset YAML (COCO-json or YOLO-txt splits, optional texts and grounding)")
    p.add_argument("--model", help="what to start from: an architecture config name/YAML (fresh weights), or a saved "
                   "model folder or known weights name such as ovdet-synth (fine-tuning)")
    p.add_argument("--text-encoder", help="text encoder spec for a fresh model (default ViT-B-32-quickgelu:openai)")
    p.add_argument("--tune", choices=("full", "head", "prompts"),
                   help="what trains when fine-tuning a saved model: full (default; with distillation against "
                   "forgetting), head (linear probe of the class-embedding convs) or prompts (one embedding per "
                   "class; the detector and every other name stay exactly as they were)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--imgsz", type=positive_int)
    p.add_argument("--batch", type=positive_int, help="images per step, over all processes")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch (default: the cores available)")  # fmt: skip
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--out", help="run folder (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last/ checkpoint")
    p.add_argument("--config", metavar="RECIPE", help="a YAML file of training settings (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any setting, e.g. --set lr0=0.001 --set augment.hsv_h=0 (repeatable)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _saved_settings(run: str) -> dict | None:
    """The settings the run in ``run`` was started with, or ``None`` if there is none to read."""
    from ..engine.checkpoint import read_train_info
    from ..errors import OVDetError

    try:
        return read_train_info(Path(run) / "last")["settings"]
    except (OVDetError, OSError, ValueError, KeyError):
        return None


def _same(saved: dict | None, key: str, value: object) -> bool:
    """Whether a flag repeats the value the run was started with (paths compared absolute)."""
    if saved is None or key not in saved:
        return False
    if key in ("data", "model") and os.path.exists(str(value)):
        value = os.path.abspath(str(value))
    return saved[key] == value


def run(args: argparse.Namespace) -> int:
    from ..engine.settings import load_settings
    from ..engine.train import resume_settings, train

    flags = {"data": args.data, "model": args.model, "text_encoder": args.text_encoder, "epochs": args.epochs,
             "imgsz": args.imgsz, "batch": args.batch, "device": args.device, "workers": args.workers,
             "out": args.out, "tune": args.tune}  # fmt: skip
    if args.resume:
        if not args.out:
            raise ConfigError("--resume needs --out RUN, the run folder to continue")
        saved = _saved_settings(args.out)
        fixed = [f"--{k.replace('_', '-')}" for k, v in flags.items()
                 if v is not None and k not in ("device", "workers", "out") and not _same(saved, k, v)]  # fmt: skip
        if args.config:
            fixed.append("--config")
        if fixed:
            raise ConfigError(
                f"{', '.join(fixed)} cannot change when resuming (the run continues as it started; the learning-rate "
                f"schedule depends on them); to train on from where it stopped with other settings, fine-tune: "
                f"ovdet train --model {args.out}/last ... --out NEW_RUN"
            )
        settings = resume_settings(args.out, device=args.device, workers=args.workers, **_pairs(args.set))
    else:
        settings = load_settings(args.config, {**flags, **_pairs(args.set)})
    import logging

    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..model.device import set_threads

    set_threads(args.threads)
    logging.getLogger("ovdet.engine.train").setLevel(logging.INFO)  # one line per epoch: losses and validation AP
    logging.getLogger("ovdet.engine.distill").setLevel(logging.INFO)  # the names distilled, from where, the weight
    with logging_redirect_tqdm():
        from .main import stop_requested

        run_dir = train(settings, resume=args.resume, progress=not args.quiet, should_stop=stop_requested)
    print(f"run: {run_dir} (best model: {run_dir / 'best'}, last: {run_dir / 'last'})")
    return 0
