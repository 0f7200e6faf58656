"""The training loop. It reads top to bottom: data, model, text table, optimizer, then epochs of steps and checks.

Run folder::

    RUN/settings.yaml    the resolved settings
    RUN/last/            the latest EMA model (a save() folder) + resume state, swapped in atomically
    RUN/best/            the EMA model with the best validation fitness (0.1 AP50 + 0.9 AP)
    RUN/metrics.csv      one row per finished epoch (rewritten from last/'s history, so a resumed run never
                         duplicates or loses a row)
    RUN/loss.png, RUN/ap.png

Fine-tuning: ``settings.tune`` chooses what trains (:mod:`.tune`), ``settings.distill`` keeps what the starting model
knew (:mod:`.distill`), ``settings.replay`` mixes a base dataset into every batch (:mod:`.replay`).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel (nccl on GPU,
gloo on CPU), data is split by a DistributedSampler, and only rank 0 validates, logs and writes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn

from ..data.datasets import SplitData, load_dataset_config, load_grounding, load_split
from ..data.training import EpochShuffle, TrainingSet, collate, worker_init
from ..errors import CheckpointError, ConfigError, DatasetError
from ..fileio import MARKER, atomic_write_text, check_output_dir, has_marker, write_marker
from ..model.build import build_detector
from ..model.detector import OVDetector
from ..model.device import check_memory, resolve_device
from ..model.serialization import save_detector
from .checkpoint import optimizer_state, read_train_info, read_train_state, set_rng_state, write_train_state
from .distill import build_distiller, split_vocabulary
from .ema import ModelEMA
from .evaluate import evaluate
from .loss import DetectionLoss, one2many_gain
from .replay import Replay, join_batches
from .settings import TrainSettings, apply_overrides
from .tune import Tuner, check_tuning

__all__ = ["train", "resume_settings"]

logger = logging.getLogger(__name__)
METRIC_FIELDS = ["epoch", "box", "cls", "dfl", "distill", "lr", "AP", "AP50", "fitness", "seconds"]
# settings that decide what trains and against what: a resumed run takes them as they were, or a repeat of them
FIXED_ON_RESUME = ("model", "text_encoder", "tune", "freeze", "distill", "distill_vocab", "replay")


# ---------------------------------------------------------------------------------------------------- helpers
def _distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), world, dev


def _class_prompts(split: SplitData, texts: dict[str, tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [texts.get(name, (name,)) for name in split.names]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 5)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"  # not applicable (no objects to find), as ovdet eval prints it


def _absolute_if_path(spec: str) -> str:
    return os.path.abspath(spec) if os.path.exists(spec) else spec  # a config or weights name stays a name


def _recorded(key: str, value: Any) -> Any:
    """A setting as a run records it: paths absolute (so a resume may repeat them relative)."""
    if key in ("model", "distill_vocab", "replay") and isinstance(value, str):
        return _absolute_if_path(value)
    return value


def _is_run_folder(folder: Path) -> bool:
    """A folder ``train`` may write into: one it marked, or a run of an ovdet that wrote no marker yet."""
    return has_marker("train")(folder) or (folder / "settings.yaml").is_file()


def _build_model(settings: TrainSettings) -> OVDetector:
    """The starting model, named as every command names one (:func:`ovdet.io.resolve.resolve_model`): a config for
    fresh weights, a saved folder or known weights (e.g. ``ovdet-synth``) to fine-tune."""
    from ..io.resolve import resolve_model

    # a saved model brings its own text encoder: resolve_model warns if one was given anyway (it is then ignored)
    return resolve_model(settings.model, text_encoder=settings.text_encoder, for_training=True)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)  # norms, biases, logit scales: no decay
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(settings: TrainSettings, epoch_float: float) -> float:
    x = epoch_float / settings.epochs
    if settings.schedule == "cosine":
        return ((1 - math.cos(x * math.pi)) / 2) * (settings.lrf - 1) + 1
    return (1 - x) * (1.0 - settings.lrf) + settings.lrf


def _write_metrics(run: Path, history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
    atomic_write_text(run / "metrics.csv", buffer.getvalue())


# ---------------------------------------------------------------------------------------------------- the loop
def resume_settings(run: str | os.PathLike, **overrides: Any) -> TrainSettings:
    """The settings a run was started with (from ``RUN/last``), with ``overrides`` (e.g. device, workers) on top.

    Raises:
        CheckpointError: the run has no resumable ``last/``.
        ConfigError: an override would change one of :data:`FIXED_ON_RESUME` (what trains and against what); a
            repeat of the run's own value is fine.
    """
    last = Path(run) / "last"
    if not last.is_dir():
        raise CheckpointError(f"nothing to resume in {run}: it has no last/ checkpoint; start the run without --resume")
    meta = read_train_info(last)  # the settings only: the tensors are read once, by train()
    saved = dict(meta["settings"])
    saved["out"] = str(run)  # the run continues where it is now, even if it was moved or copied since
    settings = apply_overrides(TrainSettings(data=saved.pop("data")), saved)
    given = {k: v for k, v in overrides.items() if v is not None}
    changed = apply_overrides(settings, given)
    for key in FIXED_ON_RESUME:
        if key in given and _recorded(key, getattr(changed, key)) != getattr(settings, key):
            raise ConfigError(
                f"{key} cannot change when resuming: the run in {run} trains with {key}={getattr(settings, key)!r}; "
                f"to go on with {key}={given[key]!r}, fine-tune: ovdet train --model {run}/last ... --out NEW_RUN"
            )
    settings = changed
    if not Path(settings.data).is_file():
        raise CheckpointError(
            f"the run in {run} trained on {settings.data}, which is not there now; pass its new place with "
            "--set data=PATH/data.yaml"
        )
    return settings


def train(
    settings: TrainSettings,
    *,
    resume: bool = False,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Train a detector, or with ``resume=True`` continue the run in ``settings.out``; returns the run folder.

    ``should_stop`` is polled after every step; when it returns true, training stops with ``KeyboardInterrupt``, and
    it may raise its own ``KeyboardInterrupt`` subclass instead (the command line's raises the exception of the
    Ctrl-C or SIGTERM received, whose first raise can be lost inside a data-loader worker's cleanup). ``last/`` holds the last finished epoch, so ``resume=True`` continues from there.

    Raises:
        DatasetError, ConfigError, CheckpointError: bad data or settings (a device this machine lacks, an image size
            that cannot fit), an existing run without ``resume``, or a missing or broken resume state.
        OutputError: ``settings.out`` is a file, a folder of files ovdet did not write, or not writable.
    """
    resolve_device(settings.device)  # before anything else: "cuda" on a machine without one is one clear error
    # paths are recorded absolute, so the run resumes from any working directory
    settings = dataclasses.replace(settings, data=os.path.abspath(settings.data), model=_absolute_if_path(settings.model),
                                   **{k: _recorded(k, getattr(settings, k)) for k in ("distill_vocab", "replay")})
    distill_weight = check_tuning(settings)
    check_memory(settings.imgsz * settings.imgsz, batch=settings.batch, device=resolve_device(settings.device))
    run = Path(settings.out)
    check_output_dir(run, what="run folder", owned=_is_run_folder, fix="pass another --out")
    rank, world, device = _distributed(settings.device)
    resume_meta: dict[str, Any] | None = None
    resume_tensors: dict[str, dict[str, torch.Tensor]] = {}
    if resume:
        if not (run / "last").is_dir():
            raise CheckpointError(f"nothing to resume in {run}: it has no last/ checkpoint; start without --resume")
        resume_tensors, resume_meta = read_train_state(run / "last")
    elif (run / "last").exists():
        raise ConfigError(f"{run} already holds a training run; pass --resume to continue it, or choose another --out")
    main_process = rank == 0
    torch.manual_seed(settings.seed + rank)

    # data
    data = load_dataset_config(settings.data)
    train_split = load_split(data, "train", strict=settings.strict_data)
    val_split = load_split(data, settings.val_split, strict=settings.strict_data) if settings.val_split in data.splits else None
    records = list(train_split.records)
    prompt_tuning = settings.tune == "prompts"
    if settings.grounding and not prompt_tuning:  # prompt tuning learns the dataset's classes, not phrases
        for source in data.grounding:
            records += load_grounding(source, strict=settings.strict_data)
    if not any(len(r.boxes) for r in records):  # every image would teach "background" for every name
        raise DatasetError(
            f"{settings.data}: split 'train' has no labelled object in its {len(train_split.records)} images, so "
            "there is nothing to learn; check its annotations (file, category ids) or labels/ folder"
        )
    class_prompts = _class_prompts(train_split, data.texts)
    replay_split = replay_prompts = None
    if settings.replay is not None:
        base = load_dataset_config(settings.replay)
        replay_split = load_split(base, "train", strict=settings.strict_data)
        replay_prompts = _class_prompts(replay_split, base.texts)

    # model, what trains, and the frozen text table: every prompt and phrase, encoded once (through the cache)
    model = _build_model(settings).to(device)
    if model.text_encoder is None:
        raise ConfigError("the model has no text encoder, so it cannot be trained on text prompts")
    dataset_classes = {n: list(ps) for n, ps in zip(train_split.names, class_prompts)}
    # the teacher is the starting model as loaded, whatever a resumed run's weights are now
    distiller = build_distiller(model, dataset_classes, weight=distill_weight, explicit=settings.distill is not None,
                                vocab_file=settings.distill_vocab)  # fmt: skip
    start_tuned = model.tuned
    if not prompt_tuning and model.tuned is not None:  # the dataset's names train with their text embeddings
        model.tuned = model.tuned.without(train_split.names)
    model.set_classes(dataset_classes)  # the saved vocabulary (prompt tuning: its starting point)
    tuner = Tuner(model, settings.tune, settings.freeze)
    if prompt_tuning:  # one row per class, the class name its only prompt: the rows are the tuned embeddings
        class_prompts = [(n,) for n in train_split.names]
        prompts = list(train_split.names)
    else:
        prompts = [p for ps in class_prompts + (replay_prompts or []) for p in ps]
        prompts = list(dict.fromkeys(prompts + [p for r in records if r.phrases for p in r.phrases]))
    # (P, D), L2-normalised; prompt tuning scores its own rows instead (Tuner.table)
    table = model.class_embeddings.detach() if prompt_tuning else model.text_encoder.encode(prompts, device=device)
    table = table.to(device)
    if world > 1:  # every process must score against the same embeddings (a random-weight tower differs per rank)
        for tensor in (table, *([distiller.embeddings] if distiller else []), *tuner.parameters()):
            dist.broadcast(tensor.data, 0)
    prompt_index = {p: i for i, p in enumerate(prompts)}

    dataset = TrainingSet(records, class_prompts, prompt_index, imgsz=settings.imgsz, augment=settings.augment,
                          max_vocab=settings.max_vocab, seed=settings.seed, cache_mb=settings.cache_mb)  # fmt: skip
    per_process = max(settings.batch // world, 1)
    sampler = (
        torch.utils.data.distributed.DistributedSampler(dataset, shuffle=True, seed=settings.seed, drop_last=True)
        if world > 1 else EpochShuffle(len(dataset), settings.seed)
    )  # fmt: skip
    # built once: persistent workers keep their decoded-image caches and skip a restart every epoch
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process, sampler=sampler, num_workers=settings.workers, collate_fn=collate,
        drop_last=len(dataset) >= 2 * per_process, pin_memory=device.type == "cuda",
        persistent_workers=settings.workers > 0, generator=torch.Generator().manual_seed(settings.seed),
        worker_init_fn=worker_init,
    )  # fmt: skip
    replay = None
    if replay_split is not None:  # the base dataset's images, with its own classes as negatives
        base_set = TrainingSet(replay_split.records, replay_prompts, prompt_index, imgsz=settings.imgsz,
                               augment=settings.augment, max_vocab=settings.max_vocab, seed=settings.seed + 1,
                               cache_mb=settings.cache_mb)  # fmt: skip
        replay = Replay(base_set, per_process, workers=settings.workers, seed=settings.seed + 1 + rank)
    accumulate = max(round(settings.nbs / (per_process * world)), 1)
    weight_decay = settings.weight_decay * per_process * world * accumulate / settings.nbs
    groups = _param_groups(model, weight_decay)
    groups.append({"params": tuner.parameters(), "weight_decay": 0.0})  # prompt embeddings: no decay
    groups = [g for g in groups if g["params"]]
    trained = [p for g in groups for p in g["params"]]
    optimizer = (
        torch.optim.AdamW(groups, lr=settings.lr0, betas=(settings.momentum, 0.999))
        if settings.optimizer == "AdamW"
        else torch.optim.SGD(groups, lr=settings.lr0, momentum=settings.momentum, nesterov=True)
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = settings.lr0
    ema = ModelEMA(model, settings.ema_decay, settings.ema_tau, averaged=tuner.trained_keys)
    criterion = DetectionLoss(model.config.head.reg_max, settings.loss).to(device)
    use_amp = settings.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, history, best_fitness, step = 0, [], -1.0, 0
    if resume_meta is not None:
        model.load_state_dict(resume_tensors["model"])
        ema.state = {k: v.to(device) for k, v in resume_tensors["ema"].items()}
        ema.updates = resume_meta["ema_updates"]
        if tuner.prompts is not None:
            tuner.prompts.load_state_dict(resume_tensors["tune"])
        optimizer.load_state_dict(optimizer_state(resume_tensors["optimizer"], resume_meta["optimizer"]))
        set_rng_state(resume_tensors["rng"], resume_meta["rng"])
        start_epoch, history = resume_meta["epoch"] + 1, resume_meta["history"]
        best_fitness, step = resume_meta["best_fitness"], resume_meta["step"]
        if main_process:
            logger.info("resuming %s from epoch %d", run, start_epoch + 1)
    if main_process:
        run.mkdir(parents=True, exist_ok=True)
        if not (run / MARKER).exists():
            write_marker(run, "train")
        atomic_write_text(run / "settings.yaml", yaml.safe_dump(settings.to_dict(), sort_keys=False))
        _write_metrics(run, history)  # drops rows of epochs that finished after last/ was written
    # prompt tuning trains no module weight, which DDP refuses to wrap: its gradients are averaged by hand below
    ddp = (
        nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1 and not prompt_tuning else model
    )  # fmt: skip
    eval_model = build_detector(model.config, text_encoder=model.text_encoder) if main_process else None

    if start_epoch >= settings.epochs and main_process:
        logger.info("%s already finished %d epochs", run, settings.epochs)
    for epoch in range(start_epoch, settings.epochs):
        t0 = time.time()
        dataset.set_epoch(epoch, mosaic=epoch < settings.epochs - settings.close_mosaic)
        sampler.set_epoch(epoch)
        tuner.train_mode(model)  # frozen parts and held BatchNorms stay in eval mode
        if replay is not None:
            replay.mosaic = epoch < settings.epochs - settings.close_mosaic
        # ultralytics' rule: at least 100 warm-up iterations, none when warmup_epochs is 0
        warmup_iters = max(round(settings.warmup_epochs * len(loader)), 100) if settings.warmup_epochs > 0 else 0
        sums = {"box": 0.0, "cls": 0.0, "dfl": 0.0, "distill": 0.0}
        from tqdm import tqdm

        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", disable=not (progress and main_process))
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            # learning rate: linear warm-up, then the schedule (per iteration)
            factor = _lr_factor(settings, epoch + i / max(len(loader), 1))
            if step < warmup_iters:
                factor *= step / warmup_iters
            for group in optimizer.param_groups:
                group["lr"] = settings.lr0 * factor
            if replay is not None:
                batch = join_batches(batch, replay.next())
            images = batch.images.to(device, non_blocking=True).float().div_(255)
            text = tuner.table(table)[batch.prompts.to(device)]  # (B, K, D)
            mask, targets, k = batch.mask.to(device), batch.targets.to(device), text.shape[1]
            with torch.autocast("cuda", dtype=torch.float16) if use_amp else nullcontext():
                gain = one2many_gain(epoch, settings.epochs)  # end-to-end heads (YOLO26) only
                if distiller is None:
                    loss, items = criterion(ddp(images, text), targets, mask, one2many_gain=gain)
                else:  # the distilled names ride along in the same forward pass, after each image's vocabulary
                    text = distiller.extend(text)
                    out, kept = split_vocabulary(ddp(images, text), k)
                    loss, items = criterion(out, targets, mask, one2many_gain=gain)
                    extra, items["distill"] = distiller.loss(images, text, kept, targets, k, one2many_gain=gain)
                    loss = loss + extra
            scaler.scale(loss).backward()
            if (i + 1) % accumulate == 0 or i + 1 == len(loader):
                if world > 1 and prompt_tuning:  # no DDP to average them: the prompt gradients, by hand
                    for p in trained:
                        dist.all_reduce(p.grad)
                        p.grad /= world
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trained, settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                ema.update(model)
            step += 1
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
            for k, v in items.items():
                sums[k] += float(v)
            bar.set_postfix({k: f"{v / (i + 1):.3f}" for k, v in sums.items()}, refresh=False)
        n = max(len(loader), 1)
        losses = torch.tensor([sums[k] / n for k in ("box", "cls", "dfl", "distill")], device=device)
        if world > 1:
            dist.all_reduce(losses)
            losses /= world
        if main_process:
            row: dict[str, Any] = {"epoch": epoch + 1, "box": round(float(losses[0]), 5), "cls": round(float(losses[1]), 5),
                                   "dfl": round(float(losses[2]), 5), "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
            if distiller is not None:
                row["distill"] = round(float(losses[3]), 5)
            ema.copy_to(eval_model)
            tuner.install_vocabulary(eval_model, model.vocabulary, start_tuned)
            last_epoch = epoch + 1 == settings.epochs
            fitness = None
            if val_split is not None and ((epoch + 1) % settings.val_interval == 0 or last_epoch):
                m = evaluate(eval_model, val_split, texts=data.texts, progress=progress)
                fitness = 0.1 * (m["AP50"] or 0.0) + 0.9 * (m["AP"] or 0.0)  # None: a val split without objects
                row.update(AP=_round(m["AP"]), AP50=_round(m["AP50"]), fitness=round(fitness, 5))
            row["seconds"] = round(time.time() - t0, 1)
            history.append(row)
            improved = fitness is not None and fitness > best_fitness
            best_fitness = max(best_fitness, fitness) if fitness is not None else best_fitness
            info = {"epoch": epoch, "step": step, "ema_updates": ema.updates, "best_fitness": best_fitness,
                    "history": history, "settings": settings.to_dict()}  # fmt: skip
            metadata = {"training": {"run": str(run), "epoch": epoch + 1, "metrics": row}}
            save_detector(eval_model, run / "last", metadata=metadata, extra=lambda tmp: write_train_state(
                tmp, model_state=model.state_dict(), ema_state=ema.state, optimizer=optimizer, info=info,
                tune_state=tuner.prompts.state_dict() if tuner.prompts is not None else None))
            if improved or (val_split is None and last_epoch):
                save_detector(eval_model, run / "best", metadata=metadata)
            _write_metrics(run, history)
            _plot(run, history)
            # the KL is computed as cross-entropy minus entropy: at 0 it can round to -1e-7, printed as -0.0000
            distilled = f" distill {max(row['distill'], 0.0):.4f}" if "distill" in row else ""
            logger.info(
                "epoch %d/%d: loss box %.4f cls %.4f dfl %.4f%s%s (%.0f s)", epoch + 1, settings.epochs, row["box"],
                row["cls"], row["dfl"], distilled,
                f" | val AP50 {_fmt(row['AP50'])} AP {_fmt(row['AP'])}" if "AP" in row else "", row["seconds"],
            )  # fmt: skip
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return run


def _plot(run: Path, history: list[dict[str, Any]]) -> None:
    from .plots import plot_curves

    try:
        plot_curves(run, history)
    except Exception as e:  # a plotting failure must never stop training
        logger.warning("could not draw training curves: %s", e)
