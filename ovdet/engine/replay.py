"""Replay while fine-tuning (setting ``replay: BASE.yaml``): every batch of the custom dataset is joined by as many
training images of a base dataset, each with its own labels and negatives from the base dataset's classes only (a
custom image never gets a base class as a negative, nor a base image a custom one: neither dataset says those are
absent). The maintainers' advice against forgetting in YOLO-World (#154, #451): mix the original data back in.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import torch

from ..data.training import Batch, EpochShuffle, TrainingSet, collate, worker_init

__all__ = ["join_batches", "Replay"]


def join_batches(first: Batch, second: Batch) -> Batch:
    """One batch of both: images stacked (``first``'s first), target rows renumbered, vocabularies padded to the
    longer one (padding repeats each image's first entry and is masked out, as :func:`~ovdet.data.training.collate`
    pads)."""
    k = max(first.prompts.shape[1], second.prompts.shape[1])

    def pad(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        extra = k - batch.prompts.shape[1]
        prompts = torch.cat([batch.prompts, batch.prompts[:, :1].expand(-1, extra)], 1)
        mask = torch.cat([batch.mask, torch.zeros(len(batch.mask), extra, dtype=torch.bool)], 1)
        return prompts, mask

    (p1, m1), (p2, m2) = pad(first), pad(second)
    shifted = second.targets.clone()
    shifted[:, 0] += len(first.images)
    return Batch(
        images=torch.cat([first.images, second.images]),
        targets=torch.cat([first.targets, shifted]),
        prompts=torch.cat([p1, p2]),
        mask=torch.cat([m1, m2]),
    )


class Replay:
    """Batches of the base dataset without end: a new order and augmentation seed every pass over it.

    Args:
        dataset: The base dataset's training samples (its own classes as negatives).
        batch_size: Images per batch (the custom batch's size).
        workers: Data-loading processes (persistent over the passes).
        seed: Base seed of the order.
    """

    def __init__(self, dataset: TrainingSet, batch_size: int, *, workers: int, seed: int):
        self.dataset = dataset
        self.sampler = EpochShuffle(len(dataset), seed)
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers, collate_fn=collate,
            drop_last=len(dataset) >= 2 * batch_size, persistent_workers=workers > 0, worker_init_fn=worker_init,
        )  # fmt: skip
        self.mosaic = True
        self._batches = self._passes()

    def _passes(self) -> Iterator[Batch]:
        for n in count():
            self.dataset.set_epoch(n, mosaic=self.mosaic)  # mosaic follows the main run's switch, pass by pass
            self.sampler.set_epoch(n)
            yield from self.loader

    def next(self) -> Batch:
        """The next batch of the base dataset, its loader restarted (reshuffled) whenever it runs out."""
        return next(self._batches)
