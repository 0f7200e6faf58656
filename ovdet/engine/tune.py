"""What trains while fine-tuning: the ``tune`` setting (``ovdet train --tune full|head|prompts``).

- ``full``: every weight but the text encoder, less what ``freeze`` names (ovdet's behaviour before tuning modes).
- ``head``: the linear probe: only the last 1×1 conv of each level's class-embedding branch trains (YOLO-World's
  ``embed_branch[i][-1]``; YOLOE's ``cv3[i][2]``, here ``head.one2many.embed[i][-1]``, and for YOLO26 also the
  one-to-one copy). YOLOE reports 85 % of full fine-tuning's AP from this in an eighth of the epochs.
- ``prompts``: prompt tuning: only one embedding per dataset class trains, initialised from its text embedding
  (YOLO-World v2-L: COCO 45.7 → 47.9 AP); the detector stays bit-identical, and every other name is untouched by
  construction. The saved model carries the tuned vectors by name (:mod:`ovdet.text.tuned`).

In ``head`` and ``prompts`` modes every BatchNorm keeps its running statistics (it stays in eval mode while the
model trains), and :class:`Tuner.trained_keys` tells the EMA which state-dict entries may change, so that frozen
entries are copied, never averaged: ``d·x + (1-d)·x`` is not always ``x`` in floating point.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, DatasetError
from ..model.detector import OVDetector
from ..text.tuned import TunedEmbeddings
from ..text.vocabulary import Vocabulary
from .distill import DEFAULT_WEIGHT, read_vocabulary_file
from .settings import TUNE_MODES, TrainSettings

__all__ = ["TUNE_MODES", "Tuner", "PromptEmbeddings", "check_tuning", "probe_convs", "trained_parameters"]

logger = logging.getLogger(__name__)


def probe_convs(model: OVDetector) -> list[nn.Conv2d]:
    """The convs the linear probe trains: the last 1×1 conv of each level's class-embedding branch (both branches of
    an end-to-end YOLO26 head).

    Raises:
        ConfigError: a prompt-free YOLOE head (its fixed vocabulary convs are not an embedding branch) or a head
            without a known embedding branch.
    """
    head = model.head
    if getattr(head, "prompt_free", 0):
        raise ConfigError("a prompt-free model has no class-embedding branch to probe; use --tune full")
    if hasattr(head, "embed_branch"):  # OVHead: ovdet and YOLO-World v1/v2
        convs = [branch[-1] for branch in head.embed_branch]
    elif hasattr(head, "one2many"):  # YOLOEHead: cv3 per branch
        convs = [embed[-1] for name in ("one2many", "one2one") if getattr(head, name) is not None
                 for embed in getattr(head, name).embed]  # fmt: skip
    else:
        raise ConfigError(f"no linear probe is defined for the head {type(head).__name__}; use --tune full")
    if not all(isinstance(c, nn.Conv2d) and c.kernel_size == (1, 1) for c in convs):
        raise ConfigError(f"the class-embedding branches of {type(head).__name__} do not end in a 1x1 conv")
    return convs


def trained_parameters(model: OVDetector, mode: str, freeze: str = "none") -> list[str]:
    """Names (as in ``model.named_parameters()``) of the detector's parameters that ``mode`` trains."""
    if mode not in TUNE_MODES:
        raise ConfigError(f"tune must be one of {', '.join(TUNE_MODES)}, got {mode!r}")
    if mode == "prompts":
        return []
    if mode == "head":
        probe = {id(p) for conv in probe_convs(model) for p in conv.parameters()}
        return [n for n, p in model.named_parameters() if id(p) in probe]
    frozen = {"none": (), "backbone": ("backbone.",), "head": ("backbone.", "neck.")}[freeze]
    return [n for n, _ in model.named_parameters() if not n.startswith(frozen)]


def check_tuning(settings: TrainSettings) -> float:
    """Check the tuning settings before any work; returns the distillation weight the run uses (``distill``, or
    :data:`~ovdet.engine.distill.DEFAULT_WEIGHT` when fine-tuning a saved model in ``full``/``head`` mode, else 0).

    Raises:
        ConfigError: ``head``, ``prompts`` or distillation from a config (random weights have nothing to keep).
    """
    from ..data.datasets import load_dataset_config
    from ..io.resolve import is_config_spec

    from_config = is_config_spec(settings.model)
    if from_config and (settings.tune != "full" or settings.distill):
        what = f"--tune {settings.tune}" if settings.tune != "full" else "distillation (distill > 0)"
        raise ConfigError(
            f"{what} keeps what a trained model knows, but '{settings.model}' is a config (random weights); start "
            "from a saved model (--model FOLDER or known weights such as ovdet-synth), or train it fully first"
        )
    if settings.distill_vocab is not None:
        read_vocabulary_file(settings.distill_vocab)  # a bad file fails now, not after the data loads
    if settings.replay is not None:
        try:
            replay = load_dataset_config(settings.replay)
        except DatasetError as e:  # say which of the two dataset files it is
            raise DatasetError(f"replay dataset (--set replay=...): {e}") from None
        if "train" not in replay.splits:
            raise ConfigError(f"replay dataset {settings.replay} has no train split to replay")
        if Path(settings.replay).resolve() == Path(settings.data).resolve():
            logger.warning("replay is the training dataset itself (%s): every batch holds its images twice; replay is "
                           "meant for a base dataset the model learnt before", settings.replay)  # fmt: skip
    if settings.tune == "prompts" or from_config:
        return 0.0
    return DEFAULT_WEIGHT if settings.distill is None else float(settings.distill)


class PromptEmbeddings(nn.Module):
    """One learnable embedding per dataset class (prompt tuning).

    Args:
        initial: ``(C, D)`` starting vectors, the classes' text embeddings (L2-normalised raw text-encoder outputs).

    ``forward()`` returns the ``(C, D)`` embeddings L2-normalised, as every text embedding the detector scores is.
    """

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(initial.detach().clone().float())

    def forward(self) -> torch.Tensor:
        return nn.functional.normalize(self.weight, dim=-1)


class Tuner:
    """Applies a ``tune`` mode to a detector for one training run.

    Args:
        model: The detector, with the dataset's vocabulary set (its rows initialise the prompt embeddings).
        mode: ``full``, ``head`` or ``prompts``.
        freeze: ``full`` mode's ``freeze`` setting.

    Sets ``requires_grad`` on the detector's parameters; :meth:`train_mode` puts the model in training mode with the
    frozen statistics held; :attr:`prompts` holds the prompt embeddings (``prompts`` mode, else ``None``).
    """

    def __init__(self, model: OVDetector, mode: str, freeze: str = "none"):
        self.mode = mode
        trained = set(trained_parameters(model, mode, freeze))
        for name, p in model.named_parameters():
            p.requires_grad_(name in trained)
        # frozen modules as ovdet always held them (whole parts in eval mode), and every BatchNorm whose own affine
        # parameters do not train: it keeps the statistics the weights around it were trained with
        self._frozen_parts: list[nn.Module] = {
            "none": [], "backbone": [model.backbone], "head": [model.backbone, model.neck]
        }[freeze] if mode == "full" else []  # fmt: skip
        self._held_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                            and not any(p.requires_grad for p in m.parameters(recurse=False))]  # fmt: skip
        held = {id(m) for m in self._held_norms} | {id(m) for part in self._frozen_parts for m in part.modules()}
        self.trained_keys: set[str] = set(trained)
        for name, module in model.named_modules():
            if id(module) not in held:
                self.trained_keys |= {f"{name}.{b}" if name else b for b, _ in module.named_buffers(recurse=False)}
        self.prompts: PromptEmbeddings | None = None
        if mode == "prompts":
            self.prompts = PromptEmbeddings(model.class_embeddings).to(model.class_embeddings.device)
        n = sum(p.numel() for p in (*model.parameters(), *self.parameters()) if p.requires_grad)
        logger.info("tune=%s: %d trained values", mode, n)

    def parameters(self) -> list[nn.Parameter]:
        """Everything the optimizer updates (detector parameters, or the prompt embeddings)."""
        return [self.prompts.weight] if self.prompts is not None else []

    def train_mode(self, model: nn.Module) -> None:
        """``model.train()``, with frozen parts and held BatchNorms back in eval mode."""
        model.train()
        for module in (*self._frozen_parts, *self._held_norms):
            module.eval()

    def table(self, text_table: torch.Tensor) -> torch.Tensor:
        """The embedding table a batch's prompt rows index: the frozen text table, or in ``prompts`` mode the tuned
        ``(C, D)`` class embeddings (one row per class; the dataset then trains with class names as prompts)."""
        return self.prompts() if self.prompts is not None else text_table

    def install_vocabulary(self, model: OVDetector, vocabulary: Vocabulary, base: TunedEmbeddings | None) -> None:
        """Give a trained copy its vocabulary and tuned table: in ``prompts`` mode the vocabulary holds the tuned
        embeddings, and the table (see :meth:`tuned_table`) lets ``set_classes`` find them by name."""
        model.tuned = self.tuned_table(vocabulary.names, base)
        if self.prompts is not None:
            vocabulary = Vocabulary(vocabulary.names, vocabulary.prompts, self.prompts().detach().float().cpu().numpy())
        model.set_vocabulary(vocabulary)

    def tuned_table(self, names: Sequence[str], base: TunedEmbeddings | None) -> TunedEmbeddings | None:
        """The tuned-embedding table the trained model carries: ``base`` (the starting model's) with this run's
        classes on top in ``prompts`` mode; in ``full`` and ``head`` modes ``base`` without the dataset's classes
        (they were trained with their text embeddings, which the new weights expect)."""
        if self.prompts is None:
            return base.without(names) if base is not None else None
        mine = TunedEmbeddings(tuple(names), self.prompts().detach().float().cpu().numpy())
        return base.merged(mine) if base is not None else mine
