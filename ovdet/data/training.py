"""The training dataset: augmented images, boxes, and a per-image vocabulary sampled as YOLO-World trains.

Each image's vocabulary is its positive classes plus negatives sampled from the dataset's classes, up to
``max_vocab``, with one prompt (synonym) drawn per class; grounding images use the phrases of their caption. Batches
pad vocabularies to the longest one by repeating an image's first entry and mark the padding in a mask, so padding
is never a class of its own and the loss ignores it. Everything random is drawn from generators seeded by
(seed, epoch, index), so a run is reproducible whatever the number of workers.

Each worker keeps recently decoded images in memory, up to ``cache_mb``: mosaic reads four images per sample, so on
a small dataset most reads are served from memory instead of being decoded again (ultralytics keeps a similar
buffer). The cache holds exactly what the disk gives, so it never changes a sample.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .augment import AugmentConfig, build_transform
from .datasets import ImageRecord

__all__ = ["TrainingSet", "EpochShuffle", "Batch", "collate", "worker_init"]

logger = logging.getLogger(__name__)


@dataclass
class Batch:
    """A collated batch.

    Attributes:
        images: ``(B, 3, S, S)`` uint8 RGB.
        targets: ``(M, 6)`` float32 rows ``[image index, class index in that image's vocabulary, x1, y1, x2, y2]``.
        prompts: ``(B, K)`` int64 rows of the prompt table, one per vocabulary entry.
        mask: ``(B, K)`` bool, False where a vocabulary was padded.
    """

    images: torch.Tensor
    targets: torch.Tensor
    prompts: torch.Tensor
    mask: torch.Tensor


class TrainingSet(torch.utils.data.Dataset):
    """Augmented training samples with per-image vocabularies.

    Args:
        records: Detection records (labels index ``class_prompts``) and grounding records (labels index their
            ``phrases``).
        class_prompts: For each detection class, its prompts (at least the class name).
        prompt_index: Row of every prompt and phrase in the text-embedding table.
        imgsz: Output size (square).
        augment: Augmentation strengths.
        max_vocab: Classes per image (positives first, then negatives).
        seed: Base seed.
        cache_mb: Memory for decoded images per worker (least recently used dropped first); 0 disables.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_prompts: Sequence[Sequence[str]],
        prompt_index: dict[str, int],
        *,
        imgsz: int,
        augment: AugmentConfig,
        max_vocab: int = 80,
        seed: int = 0,
        cache_mb: float = 0,
    ):
        self.records = list(records)
        self.class_prompts = [tuple(p) for p in class_prompts]
        self.prompt_index = prompt_index
        self.imgsz, self.augment, self.max_vocab, self.seed = imgsz, augment, max_vocab, seed
        self.detection = [i for i, r in enumerate(self.records) if r.phrases is None]
        # epoch and mosaic switch live in shared memory, so that persistent data-loading workers see set_epoch
        self._epoch_state = torch.tensor([0, int(augment.mosaic > 0)]).share_memory_()
        self._transforms: dict[bool, object] = {}
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    def set_epoch(self, epoch: int, *, mosaic: bool = True) -> None:
        """Reseed for ``epoch``; ``mosaic=False`` turns mosaic off (the last epochs train on plain images)."""
        self._epoch_state.copy_(torch.tensor([epoch, int(mosaic and self.augment.mosaic > 0)]))

    @property
    def epoch(self) -> int:
        return int(self._epoch_state[0])

    @property
    def mosaic(self) -> bool:
        return bool(self._epoch_state[1])

    def __len__(self) -> int:
        return len(self.records)

    def _transform(self, mosaic: bool):
        if mosaic not in self._transforms:  # built lazily: once per worker process
            self._transforms[mosaic] = build_transform(self.imgsz, self.augment, mosaic=mosaic)
        return self._transforms[mosaic]

    def _read(self, index: int) -> np.ndarray | None:
        """The decoded image, from the cache when it is there; None if unreadable."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        image = cv2.imread(self.records[index].path, cv2.IMREAD_COLOR)
        if image is None or image.nbytes > self.cache_bytes:
            return image
        image.setflags(write=False)  # shared by later samples: a transform must never write into it
        self._cache[index] = image
        self._cached_bytes += image.nbytes
        while self._cached_bytes > self.cache_bytes:
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return image

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        record = self.records[index]
        image = self._read(index)
        if image is None:
            logger.warning("skipping unreadable image %s", record.path)
            return None
        boxes = record.boxes.copy()
        h, w = image.shape[:2]
        if record.normalized:  # YOLO cx, cy, w, h in [0, 1] → pixels
            cx, cy, bw, bh = boxes.T
            boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        return image, boxes[keep], record.labels[keep]

    def __getitem__(self, index: int) -> dict:
        epoch, mosaic = self._epoch_state.tolist()
        rng = np.random.default_rng([self.seed, epoch, index])
        for attempt in range(len(self.records)):  # an unreadable image is replaced by the next one, never a crash
            loaded = self._load((index + attempt) % len(self.records))
            if loaded is not None:
                index = (index + attempt) % len(self.records)
                break
        else:
            raise RuntimeError("no readable image in the training set")
        image, boxes, labels = loaded
        record = self.records[index]
        use_mosaic = record.phrases is None and bool(mosaic) and rng.random() < self.augment.mosaic
        kwargs = {}
        if use_mosaic:
            extra = []
            for j in rng.choice(self.detection, size=3):
                other = self._load(int(j))
                if other is not None:
                    extra.append({"image": other[0], "bboxes": other[1], "labels": other[2]})
            kwargs["mosaic_metadata"] = extra
        transform = self._transform(use_mosaic)
        transform.set_random_seed(int(rng.integers(2**31)))
        out = transform(image=image, bboxes=boxes, labels=labels, **kwargs)
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        labels = np.asarray(out["labels"], np.int64).reshape(-1)
        vocab, labels, keep = self._sample_vocabulary(record, labels, rng)
        rgb = np.ascontiguousarray(out["image"][..., ::-1].transpose(2, 0, 1))
        return {
            "image": torch.from_numpy(rgb),
            "boxes": torch.from_numpy(boxes[keep]),
            "labels": torch.from_numpy(labels),
            "prompts": torch.tensor(vocab, dtype=torch.int64),
        }

    def _sample_vocabulary(self, record: ImageRecord, labels: np.ndarray, rng: np.random.Generator):
        """Pick this image's vocabulary; returns (prompt rows, labels remapped into it, boxes to keep)."""
        if record.phrases is not None:
            choices = [(p,) for p in record.phrases]
            universe = len(choices)
        else:
            choices = self.class_prompts
            universe = len(choices)
        positives = list(dict.fromkeys(labels.tolist()))
        if len(positives) > self.max_vocab:
            positives = [int(c) for c in rng.choice(positives, size=self.max_vocab, replace=False)]
        chosen = list(positives)
        if record.phrases is None:  # grounding images have no trustworthy negatives: other phrases may name them
            n_neg = min(self.max_vocab, universe) - len(chosen)
            if n_neg > 0:
                pool = np.setdiff1d(np.arange(universe), np.array(positives, dtype=np.int64))
                chosen += [int(c) for c in rng.choice(pool, size=n_neg, replace=False)]
        position = {c: i for i, c in enumerate(chosen)}
        keep = np.array([int(c) in position for c in labels], dtype=bool)
        remapped = np.array([position[int(c)] for c in labels[keep]], dtype=np.int64)
        rows = [self.prompt_index[choices[c][int(rng.integers(len(choices[c])))]] for c in chosen]
        return rows, remapped, keep


class EpochShuffle(torch.utils.data.Sampler[int]):
    """A new random order every epoch, from ``seed + epoch`` alone, for a DataLoader built once for the whole run.

    The order is the one ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed + epoch))`` gives,
    so runs keep the data order of loaders built per epoch (ovdet's earlier way): that loader draws one number from
    its generator (the workers' base seed) before shuffling, and so does this sampler.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def worker_init(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: the worker leaves the process group of the command that started it.

    A signal sent to the whole group (Ctrl-C in a terminal, ``timeout -s TERM``, a scheduler stopping a job) then
    reaches only the main process, which stops cleanly and shuts its workers down itself. Left in the group, a worker
    took the SIGTERM too and died of it (torch's worker handler re-raises any SIGTERM its parent did not send), and
    the main process printed "DataLoader worker ... is killed by signal: Terminated" after its one-line message.
    A worker whose main process dies still exits: torch's watchdog checks the parent every few seconds.
    """
    if hasattr(os, "setpgid"):  # POSIX; Windows has no process groups of this kind
        os.setpgid(0, 0)
        # now a background group: with `stty tostop`, a warning written to the terminal would stop the worker by
        # SIGTTOU and the main process would wait for it forever; ignored, POSIX lets the write through
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)


def collate(samples: Sequence[dict]) -> Batch:
    """Stack samples; pad vocabularies by repeating each image's first entry (masked out)."""
    k = max(len(s["prompts"]) for s in samples)
    prompts = torch.zeros(len(samples), k, dtype=torch.int64)
    mask = torch.zeros(len(samples), k, dtype=torch.bool)
    targets = []
    for i, s in enumerate(samples):
        n = len(s["prompts"])
        prompts[i, :n] = s["prompts"]
        prompts[i, n:] = s["prompts"][0] if n else 0
        mask[i, :n] = True
        if len(s["boxes"]):
            index = torch.full((len(s["boxes"]), 1), float(i))
            targets.append(torch.cat([index, s["labels"].float()[:, None], s["boxes"]], 1))
    return Batch(
        images=torch.stack([s["image"] for s in samples]),
        targets=torch.cat(targets) if targets else torch.zeros(0, 6),
        prompts=prompts,
        mask=mask,
    )
