"""Distillation against forgetting while fine-tuning (``full`` and ``head`` modes; setting ``distill``, a loss weight).

Why: objects that are present but unlabelled in a custom dataset are trained as background for every name, so plain
fine-tuning teaches an open-vocabulary detector to ignore everything the dataset does not label (YOLO-World #232:
zero-shot skill "dropped to approximately zero"). Here a frozen copy of the starting model scores every augmented
training image against an open vocabulary that leaves out the dataset's own classes, and the student is trained to
keep those scores while it learns the dataset's classes (learning-without-forgetting, Li & Hoiem 2016, applied per
anchor to an open-vocabulary head as in ViLD's text-embedding distillation).

The vocabulary, in order of preference: a file the user gives (``distill_vocab``); else, for a pretrained CLIP text
encoder, Objects365's 365 names (shipped in ``vocabularies/objects365.yaml``); else the starting model's own
vocabulary. Any name that is one of the dataset's classes or prompts (by :func:`ovdet.classes.class_key`) is left
out: those names belong to the labels.

The distilled names are appended to each image's vocabulary in the student's forward pass (one pass; the teacher sees
the same text, so a text-guided neck is conditioned alike). The loss is the Bernoulli KL divergence between the
teacher's and the student's sigmoid scores, per anchor and name, summed over anchors outside every labelled box
(those are left to the labels) and normalised by the teacher's total score there, as the classification loss is by
its target scores (:func:`distillation_loss`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..classes import class_key, normalize_classes, read_class_file
from ..errors import ConfigError, OVDetError
from ..model.build import build_detector
from ..model.detector import OVDetector
from ..model.head import HeadOutput
from ..text.tuned import vocabulary_with_tuned
from ..text.vocabulary import Vocabulary

__all__ = [
    "DEFAULT_WEIGHT", "OBJECTS365", "Distiller", "distillation_classes", "distillation_loss", "outside_boxes",
    "read_vocabulary_file", "split_vocabulary", "pretrained_clip",
]  # fmt: skip

logger = logging.getLogger(__name__)

# the default weight when fine-tuning a saved model, chosen between 0.25 and 0.5 on a validation split of
# tools/bench_forgetting.py's style (not its test split): 0.25 had the higher mean AP50 over tuned, other seen and
# held-out pairs in both full and head modes (README, "Fine-tuning that keeps the open vocabulary"); 0 when training
# from a config (random weights have nothing to keep)
DEFAULT_WEIGHT = 0.25
OBJECTS365 = Path(__file__).parent / "vocabularies" / "objects365.yaml"


def read_vocabulary_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Names (and prompts) from a vocabulary file: a YAML list of names, a YAML mapping name → prompts, a YAML
    ``names:`` list or ``{index: name}`` mapping (ultralytics' dataset files), or a COCO-json dataset YAML (its
    categories, with its ``texts``); any other file is a class file, one class per line (``name`` or
    ``name=prompt|prompt``, ``#`` comments).

    Raises:
        ConfigError: the file is missing, unreadable, or holds no names.
        VocabularyError: a malformed class line, or duplicate names.
        DatasetError: a dataset file whose annotations cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"distillation vocabulary {path} {what}; give a YAML list of names or a class file")
    if path.suffix.lower() not in (".yaml", ".yml"):
        return read_class_file(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read distillation vocabulary {path}: {e}") from e
    if isinstance(data, Mapping) and "names" not in data and any(
        isinstance(data.get(k), Mapping) and {"images", "annotations"} & set(data[k]) for k in ("train", "val", "test")
    ):  # a dataset file (a split is {images: DIR, annotations: FILE.json}): its classes, not its split names;
        return _dataset_classes(path)  # a vocabulary may well have a class "train" (COCO and Objects365 do)
    if isinstance(data, Mapping) and "names" in data:
        data = data["names"]
    if isinstance(data, Mapping) and all(isinstance(k, int) for k in data):  # {0: person, 1: car}
        data = [data[k] for k in sorted(data)]
    if not data or not isinstance(data, (list, Mapping)):
        raise ConfigError(f"distillation vocabulary {path} must be a YAML list of names or a mapping name -> prompts")
    names, prompts = normalize_classes(data)
    return {n: list(p) for n, p in zip(names, prompts)}


def _dataset_classes(path: Path) -> dict[str, list[str]]:
    """A COCO-json dataset YAML's classes: the category names of its train split (else its first split), with the
    prompts its ``texts`` gives them."""
    from ..data.datasets import load_dataset_config, load_split

    config = load_dataset_config(path)
    split = load_split(config, "train" if "train" in config.splits else next(iter(config.splits)))
    return {name: list(config.texts.get(name, (name,))) for name in split.names}


def pretrained_clip(encoder: object) -> bool:
    """Whether ``encoder`` is an open_clip model with published pretrained weights (loaded by tag, or from a file of
    such a model): one whose text space knows everyday object names, so Objects365's names mean something to it."""
    from ..text.spec import parse_text_encoder_spec

    spec = getattr(encoder, "spec", None)
    if not isinstance(spec, str):
        return False
    try:
        parsed = parse_text_encoder_spec(spec)
    except OVDetError:
        return False  # e.g. a carried tower whose folder is gone: ovdet's own tiny CLIP
    if parsed.tag is not None:
        return True
    if parsed.weights is None or not parsed.model_name:
        return False
    import open_clip

    return bool(open_clip.list_pretrained_tags_by_model(parsed.model_name))


def distillation_classes(
    dataset: Mapping[str, Sequence[str]], model: OVDetector, vocab_file: str | os.PathLike | None = None
) -> tuple[dict[str, list[Any]], str]:
    """The names the teacher scores: ``(name → prompts, where they came from)``, without the dataset's classes.

    Args:
        dataset: The dataset's classes and their prompts.
        model: The starting model (its text encoder and vocabulary choose the default).
        vocab_file: A vocabulary file (:func:`read_vocabulary_file`), first choice when given.
    """
    if vocab_file is not None:
        classes, source = read_vocabulary_file(vocab_file), str(vocab_file)
    elif pretrained_clip(model.text_encoder):
        classes, source = read_vocabulary_file(OBJECTS365), "Objects365 (shipped with ovdet)"
    else:
        # rows already in a YOLOE head's projected space (classes given by example) are left out: the batch's text
        # is raw text-encoder space, which the head projects again
        own = model.vocabulary
        classes = {n: p for n, p, projected in zip(own.names, own.prompts, own.projected) if not projected}
        source = "the starting model's vocabulary"
    taken = {class_key(t) for name, prompts in dataset.items() for t in (name, *prompts)}

    def keys(name: str, prompts: Sequence[Any]) -> set[str]:  # visual prompts (VisualPrompt records) have no text
        return {class_key(t) for t in (name, *prompts) if isinstance(t, str)}

    kept = {n: list(p) for n, p in classes.items() if not keys(n, p) & taken}
    return kept, source


def split_vocabulary(out: HeadOutput, k: int) -> tuple[HeadOutput, HeadOutput]:
    """Split outputs scored against ``K + V`` classes into the first ``k`` (the dataset's) and the rest (the
    distilled names), one-to-many branch included."""
    first = out._replace(class_logits=out.class_logits[:, :k])
    rest = out._replace(class_logits=out.class_logits[:, k:])
    if out.one2many is not None:
        a, b = split_vocabulary(out.one2many, k)
        first, rest = first._replace(one2many=a), rest._replace(one2many=b)
    return first, rest


def outside_boxes(anchors: torch.Tensor, strides: torch.Tensor, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(B, A)`` bool: True where an anchor centre lies outside every labelled box of its image.

    Args:
        anchors: ``(A, 2)`` anchor centres in grid units; strides: ``(A, 1)`` their strides in pixels.
        targets: ``(M, 6)`` rows ``[image, class, x1, y1, x2, y2]`` (input pixels).
    """
    points = anchors * strides  # (A, 2) pixels
    keep = torch.ones(batch_size, len(points), dtype=torch.bool, device=points.device)
    if len(targets):
        image = targets[:, 0].long()
        x, y = points[:, 0], points[:, 1]
        box = targets[:, 2:6].to(points)
        inside = (x > box[:, :1]) & (x < box[:, 2:3]) & (y > box[:, 1:2]) & (y < box[:, 3:4])  # (M, A)
        covered = torch.zeros(batch_size, len(points), dtype=torch.int32, device=points.device)
        covered.index_add_(0, image.to(points.device), inside.to(torch.int32))  # boxes covering each anchor
        keep = covered == 0
    return keep


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Bernoulli KL divergence of the student's sigmoid scores from the teacher's, where ``keep`` says.

    Args:
        student: ``(B, V, A)`` logits; teacher: ``(B, V, A)`` logits of the frozen starting model.
        keep: ``(B, A)`` anchors that count (outside labelled boxes).

    Returns:
        ``sum KL(p_t || p_s) / max(sum p_t, 1)`` over kept anchors and names: exactly 0 where the logits agree
        (the KL is computed as ``BCE(s, p_t) - BCE(t, p_t)``, two identical computations then), with the gradient
        ``sigmoid(s) - p_t`` of a BCE against the teacher's scores.
    """
    p = teacher.detach().sigmoid()
    bce = nn.functional.binary_cross_entropy_with_logits
    kl = bce(student.float(), p.float(), reduction="none") - bce(teacher.detach().float(), p.float(), reduction="none")
    weight = keep[:, None, :].to(kl.dtype)  # (B, 1, A)
    return (kl * weight).sum() / (p.float() * weight).sum().clamp(min=1)


def _frozen_copy(model: OVDetector) -> OVDetector:
    """The teacher: the starting model's weights, frozen, without a text encoder. Left in training mode with every
    BatchNorm in eval mode: its outputs have the student's layout (an end-to-end head's two branches) and are the
    scores the starting model gives at inference."""
    teacher = build_detector(model.config)
    teacher.load_state_dict(model.state_dict())
    teacher.end2end = model.end2end
    teacher.requires_grad_(False)
    teacher.train()
    for m in teacher.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return teacher.to(model.device)


class Distiller:
    """The frozen starting model and the names it scores; appends them to a batch's text and gives the loss.

    Args:
        model: The starting model, before any training step (copied, frozen).
        vocabulary: The distilled names with their embeddings ``(V, D)`` (raw text-encoder space).
        weight: The loss weight (``distill``).
    """

    def __init__(self, model: OVDetector, vocabulary: Vocabulary, weight: float):
        self.teacher = _frozen_copy(model)
        self.names = vocabulary.names
        self.embeddings = torch.as_tensor(vocabulary.embeddings).to(model.device)  # (V, D)
        self.weight = float(weight)

    def extend(self, text: torch.Tensor) -> torch.Tensor:
        """``(B, K, D)`` batch text → ``(B, K + V, D)`` with the distilled names after each image's vocabulary."""
        extra = self.embeddings.to(text).unsqueeze(0).expand(text.shape[0], -1, -1)
        return torch.cat([text, extra], 1)

    def loss(
        self, images: torch.Tensor, text: torch.Tensor, student: HeadOutput, targets: torch.Tensor, k: int,
        one2many_gain: float = 0.8,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weighted loss × batch size, the weighted loss for logging)``.

        Args:
            images: The batch ``(B, 3, H, W)``; text: the extended text ``(B, K + V, D)`` the student scored.
            student: The student's outputs for the distilled names (the second part of :func:`split_vocabulary`).
            targets: ``(M, 6)`` labelled boxes (their anchors are left out).
            k: Classes of the dataset's part of ``text``.
            one2many_gain: For an end-to-end head, the one-to-many branch's share (as the detection loss).
        """
        with torch.no_grad():
            _, teacher = split_vocabulary(self.teacher(images, text), k)
        keep = outside_boxes(student.anchors, student.strides, targets.to(images.device), images.shape[0])
        value = distillation_loss(student.class_logits, teacher.class_logits, keep)
        if student.one2many is not None:
            aux = distillation_loss(student.one2many.class_logits, teacher.one2many.class_logits, keep)
            value = aux * one2many_gain + value * (1 - one2many_gain)
        value = value * self.weight
        return value * images.shape[0], value.detach()


def build_distiller(
    model: OVDetector, dataset: Mapping[str, Sequence[str]], *, weight: float, explicit: bool,
    vocab_file: str | os.PathLike | None = None,
) -> Distiller | None:
    """The :class:`Distiller` for a run, or ``None`` when ``weight`` is 0 or there is nothing to distil.

    Raises:
        ConfigError: ``explicit`` (the user set ``distill``) and no name is left once the dataset's classes are out.
    """
    if weight <= 0:
        return None
    classes, source = distillation_classes(dataset, model, vocab_file)
    if not classes:
        message = (
            f"no names to distil: {source} holds only the dataset's own classes; give other names with "
            "--set distill_vocab=FILE (a YAML list or a class file)"
        )
        if explicit:
            raise ConfigError(message)
        logger.warning("%s; fine-tuning without distillation", message)
        return None
    if source == "the starting model's vocabulary":
        own = model.vocabulary  # the vectors the starting model scored these names with
        rows = [own.names.index(n) for n in classes]
        vocabulary = Vocabulary(tuple(classes), tuple(tuple(p) for p in classes.values()), own.embeddings[rows])
    else:
        vocabulary = vocabulary_with_tuned(classes, model.text_encoder, model.tuned, device=model.device)
    logger.info("distilling %d names from %s (weight %g)", len(vocabulary.names), source, weight)
    return Distiller(model, vocabulary, weight)
