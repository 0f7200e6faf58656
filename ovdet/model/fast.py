"""The default fast path: ``predict`` on an eval-mode model runs a folded copy of it, kept in step with the model.

``OVDetector.fuse()`` folds BatchNorm and the vocabulary into convolutions (~20-45 % faster on a CPU, more with many
classes) but makes the model inference-only. :class:`InferenceCopy` gives that speed without the call: the first
``predict`` / ``stream`` / evaluation of an eval-mode model builds a fused deep copy (the text encoder is shared, not
copied) and later calls reuse it while nothing changed. What counts as a change, checked on every call in a few
microseconds per tensor, without reading any weights:

- weights, buffers, device or dtype: each parameter's and buffer's identity, storage address and PyTorch version
  counter (bumped by every in-place write: optimizer steps, ``load_state_dict``, ``copy_`` under ``no_grad``, a
  BatchNorm update in a training-mode forward; ``.to()`` / ``.half()`` move the storage) → the copy is rebuilt;
- the vocabulary (``set_classes``, ``set_vocabulary``, an in-place edit of ``class_embeddings`` or
  ``class_projected``) → only refolded;
- ``train()`` drops the copy (its memory is freed; training never uses it).

Writes through ``tensor.data`` bypass PyTorch's version counters and cannot be seen; after such an edit set
``model.fast_predict = False`` and back to ``True`` (which drops the copy). The copy costs about the model's weight
memory again (measured in README); ``model.fast_predict = False`` turns the fast path off.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["InferenceCopy", "tensor_state"]


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference tensor (created under torch.inference_mode) has no version counter
        return -1


def tensor_state(tensors: Any) -> tuple:
    """What identifies the contents of ``tensors`` without reading them: identity, storage address, version, dtype."""
    return tuple((id(t), t.data_ptr(), _version(t), t.dtype) for t in tensors)


class InferenceCopy:
    """A fused copy of a detector, rebuilt or refolded when the detector changes (see the module docstring).

    Held by the detector as a plain attribute, so it is no submodule: ``state_dict``, ``parameters``, ``.to()`` and
    ``save`` never see it, and copying or pickling the detector carries an empty one.
    """

    def __init__(self) -> None:
        self._model: OVDetector | None = None
        self._weights: tuple | None = None
        self._vocabulary: tuple | None = None

    def __getstate__(self) -> dict:
        return {}  # deepcopy / pickle of the detector: start empty instead of copying the copy

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def clear(self) -> None:
        """Drop the copy (and free its memory)."""
        self.__init__()

    @property
    def nbytes(self) -> int:
        """Bytes held by the copy's parameters and buffers (0 when there is none)."""
        if self._model is None:
            return 0
        tensors = [*self._model.parameters(), *self._model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def get(self, model: OVDetector) -> OVDetector:
        """The fused copy of ``model``, current with its weights and vocabulary."""
        vocabulary_buffers = ("class_embeddings", "class_projected")
        weights = tensor_state(
            t for name, t in [*model.named_parameters(), *model.named_buffers()] if name not in vocabulary_buffers
        ) + (model.end2end,)  # YOLO26: which branch predicts is part of what the copy must match
        vocabulary = tensor_state([model.class_embeddings, model.class_projected]) + (tuple(model.names),)
        with torch.inference_mode(False), torch.no_grad():  # normal tensors, even when called under inference_mode
            if self._model is None or weights != self._weights:
                self._model = self._build(model)
                self._weights, self._vocabulary = weights, None
            if vocabulary != self._vocabulary:
                self._model.set_vocabulary(model.vocabulary)  # a fused model refolds on set_vocabulary
                self._vocabulary = vocabulary
        return self._model

    @staticmethod
    def _build(model: OVDetector) -> OVDetector:
        encoder, model.text_encoder = model.text_encoder, None  # shared, never copied (it can be large)
        try:
            twin = copy.deepcopy(model)
        finally:
            model.text_encoder = encoder
        twin.fast_predict = False
        return twin.fuse()
