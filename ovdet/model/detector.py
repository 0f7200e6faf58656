"""``OVDetector``: backbone, neck and open-vocabulary head, with its vocabulary as registered state."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import FusedModelError, VocabularyError
from ..results import Result
from ..text.encoder import TextEncoder
from ..text.tuned import TunedEmbeddings, vocabulary_with_tuned
from ..text.vocabulary import ClassSpec, Vocabulary
from .config import ModelConfig
from .fast import InferenceCopy
from .head import HeadOutput
from ..runtime.predictor import Predictor
from .postprocess import decode_boxes, results_from_outputs
from .preprocess import preprocess

__all__ = ["OVDetector"]

logger = logging.getLogger(__name__)


class OVDetector(nn.Module, Predictor):
    """An open-vocabulary detector: boxes scored against free-text classes.

    Args:
        backbone: Module returning multi-scale features; must expose ``out_channels`` and ``strides``.
        neck: Module ``(feats, text) -> feats``; must expose ``out_channels``.
        head: Module ``(feats, text) -> HeadOutput``; must expose ``embed_dim``.
        config: The architecture config the modules were built from (saved with the model).
        text_encoder: Encodes class prompts in :meth:`set_classes`; ``None`` allows only ready embeddings.

    The vocabulary lives in the ``class_embeddings`` buffer ``(K, D)`` (saved in ``state_dict``, moved by ``.to()``,
    resized by :meth:`set_classes`) and in :attr:`names`. A prompt-free model (YOLOE ``-pf``) scores a built-in
    vocabulary held by its head instead: its ``class_embeddings`` stay empty and :meth:`set_classes` is refused.

    In eval mode, :meth:`predict`, :meth:`stream` and evaluation run a folded copy of the model (:meth:`fuse`'s
    speed without calling it), built on first use and kept in step with weights, vocabulary, device and dtype
    (:mod:`ovdet.model.fast`); ``train()``, ``save()`` and ``state_dict()`` see only this, unfused, model. Set
    :attr:`fast_predict` to ``False`` to run the model itself (no extra memory).
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: nn.Module,
        *,
        config: ModelConfig,
        text_encoder: TextEncoder | None = None,
    ):
        super().__init__()
        for what, module, attrs in (
            ("backbone", backbone, ("out_channels", "strides")),
            ("neck", neck, ("out_channels",)),
            ("head", head, ("embed_dim",)),
        ):
            missing = [a for a in attrs if not hasattr(module, a)]
            if missing:
                raise TypeError(f"{what} {type(module).__name__} lacks {', '.join(missing)}")
        if tuple(neck.out_channels) != tuple(getattr(head, "in_channels", neck.out_channels)):
            raise TypeError(f"neck gives {neck.out_channels} channels but the head expects {head.in_channels}")
        if text_encoder is not None and text_encoder.dim != head.embed_dim:
            raise ValueError(
                f"text encoder '{text_encoder.spec}' gives {text_encoder.dim}-d embeddings but the head expects "
                f"{head.embed_dim}-d"
            )
        self.backbone, self.neck, self.head = backbone, neck, head
        self.config = config
        self.text_encoder = text_encoder
        self.metadata: dict[str, Any] = {}  # provenance etc., saved in config.json
        # class embeddings learnt by prompt tuning (ovdet.engine.tune); set_classes uses them for their names
        self.tuned: TunedEmbeddings | None = None
        self.register_buffer("class_embeddings", torch.zeros(0, head.embed_dim))
        # rows already in a YOLOE head's projected space (visual prompts); saved with the vocabulary in config.json
        self.register_buffer("class_projected", torch.zeros(0, dtype=torch.bool), persistent=False)
        self._names: tuple[str, ...] = ()
        self._prompts: tuple[tuple[str, ...], ...] = ()
        self._fused = False
        self._folded_for: tuple[int, int] | None = None  # which class_embeddings tensor (and version) is folded
        self._inference_copy = InferenceCopy()
        self._fast_predict = True

    # ------------------------------------------------------------------ properties
    @property
    def names(self) -> list[str]:
        """The class names of the current vocabulary (empty before :meth:`set_classes`)."""
        return list(self._names)

    @property
    def prompts(self) -> dict[str, list[Any]]:
        """Each class's prompts, as given to :meth:`set_classes`: texts, and for classes given by example
        :class:`~ovdet.prompts.VisualPrompt` records (without their pixels)."""
        return {n: list(p) for n, p in zip(self._names, self._prompts)}

    @property
    def embed_dim(self) -> int:
        return int(self.head.embed_dim)

    @property
    def prompt_free(self) -> bool:
        """Whether the model scores a built-in vocabulary (YOLOE ``-pf``) instead of text embeddings."""
        return bool(getattr(self.head, "prompt_free", 0))

    @property
    def end2end(self) -> bool:
        """Whether inference uses the head's one-to-one branch without NMS (YOLO26; the default there). Set it to
        ``False`` for the one-to-many branch with NMS (ultralytics' ``predict(nms=None)`` on YOLO26)."""
        return getattr(self.head, "one2one", None) is not None and bool(self.head.end2end)

    @end2end.setter
    def end2end(self, value: bool) -> None:
        if value and getattr(self.head, "one2one", None) is None:
            raise ValueError(f"'{self.config.name}' has no one-to-one (end-to-end) branch; it always uses NMS")
        if getattr(self.head, "one2one", None) is not None:
            self.head.end2end = bool(value)

    @property
    def stride(self) -> int:
        return int(max(self.backbone.strides))

    @property
    def default_imgsz(self) -> int:
        """The inference size :meth:`predict` uses when given none (``config.imgsz``)."""
        return self.config.imgsz

    @property
    def device(self) -> torch.device:
        return self.class_embeddings.device

    # ------------------------------------------------------------------ tensors in, tensors out
    def forward(
        self, images: torch.Tensor, text_embeddings: torch.Tensor | None = None, text_projected: torch.Tensor | None = None
    ) -> HeadOutput:
        """Raw outputs for a batch.

        Args:
            images: ``(B, 3, H, W)`` RGB in [0, 1], H and W multiples of :attr:`stride`.
            text_embeddings: ``(K, D)`` shared by the batch, or ``(B, K, D)`` per image, raw L2-normalised
                text-encoder outputs (YOLOE projects them inside); ``None`` scores against the model's vocabulary
                (:attr:`class_embeddings`), through the folded head and neck once :meth:`fuse` was called. A
                prompt-free model takes none and scores its built-in vocabulary.
            text_projected: Optional ``(K,)`` bool (YOLOE only): rows of ``text_embeddings`` already in the projected
                space (visual prompts, :mod:`ovdet.model.visual`), which skip the text projection. Without
                ``text_embeddings``, the vocabulary's own flags (:attr:`class_projected`) are used.
        """
        if self.prompt_free:
            if text_embeddings is not None:
                raise VocabularyError(self._prompt_free_message())
            return self.head(self.neck(self.backbone(images), None), None)
        if text_embeddings is None:
            if self._fused and len(self.class_embeddings):
                if self._folded_for != self._vocabulary_key():  # e.g. moved by .to(), or edited in place
                    self._fold_vocabulary()
                return self.head.forward_folded(self.neck.forward_folded(self.backbone(images)))
            text_embeddings = self.class_embeddings
            if len(self.class_projected) == len(text_embeddings) and bool(self.class_projected.any()):
                text_projected = self.class_projected
        if text_embeddings.ndim == 2:
            text_embeddings = text_embeddings.unsqueeze(0)  # (1, K, D): shared by the batch, broadcast where used
        text = text_embeddings.to(images.dtype)
        feats = self.backbone(images)
        feats = self.neck(feats, text)
        if text_projected is not None:  # only YOLOE's head projects text (set_vocabulary refuses flags elsewhere)
            return self.head(feats, text, text_projected)
        return self.head(feats, text)

    # ------------------------------------------------------------------ vocabulary
    def set_classes(
        self, classes: ClassSpec, embeddings: Any = None, *, imgsz: int | tuple[int, int] | None = None
    ) -> OVDetector:
        """Set the vocabulary the detector scores boxes against; returns ``self``.

        Args:
            classes: Class names, or a dict name → prompts (synonyms, templates, and
                :class:`~ovdet.prompts.VisualPrompt` example boxes, mixed freely); a class with several prompts is
                embedded as their re-normalised mean (see :mod:`ovdet.model.visual` for visual prompts). A name with
                a tuned embedding (:attr:`tuned`, from prompt tuning) takes that instead of its text prompts
                (:mod:`ovdet.text.tuned`).
            embeddings: Optional ``(len(classes), D)`` array or tensor used instead of the text encoder.
            imgsz: The size visual prompts' reference images are read at (default: the model's; given, it also reads
                again a class kept from the current vocabulary that was read at another size).

        Raises:
            VocabularyError: empty or duplicate names, an embeddings shape other than ``(len(classes), D)``, or no
                text encoder and no embeddings.
            WeightsUnavailableError: prompts not in the cache need text-encoder weights that cannot be downloaded.
        """
        if self.prompt_free:
            raise VocabularyError(self._prompt_free_message())
        from .visual import has_visual_prompts, visual_vocabulary

        if embeddings is None and has_visual_prompts(classes):
            vocab = visual_vocabulary(self, classes, imgsz=imgsz)
        elif embeddings is not None:
            vocab = Vocabulary.from_embeddings(classes, embeddings, self.embed_dim)
        elif self.text_encoder is None:
            raise VocabularyError("this model has no text encoder; pass embeddings=... to set_classes")
        else:
            vocab = vocabulary_with_tuned(classes, self.text_encoder, self.tuned, device=self.device)
        self.set_vocabulary(vocab)
        return self

    def set_vocabulary(self, vocab: Vocabulary) -> None:
        """Install a ready :class:`Vocabulary` (names, prompts and embeddings). A prompt-free model takes back only its
        own built-in vocabulary (its names, no embeddings), as :attr:`vocabulary` gives it."""
        if self.prompt_free:
            if len(vocab.embeddings) or len(vocab.names) != self.head.prompt_free:
                raise VocabularyError(self._prompt_free_message())
            self.set_builtin_names(vocab.names)
            return
        if vocab.embeddings.shape[-1] != self.embed_dim:
            raise VocabularyError(f"vocabulary is {vocab.embeddings.shape[-1]}-d, the model expects {self.embed_dim}-d")
        if vocab.projected.any() and getattr(self.head, "text_projection", None) is None:
            raise VocabularyError(
                f"'{self.config.name}' has no text projection, so no class can be marked as projected (such rows are a "
                "YOLOE model's visual prompts); give this model the classes themselves, e.g. as VisualPrompts"
            )
        self.class_embeddings = torch.as_tensor(vocab.embeddings).to(self.class_embeddings)
        self.class_projected = torch.as_tensor(vocab.projected).to(self.class_embeddings.device)
        self._names, self._prompts = tuple(vocab.names), tuple(tuple(p) for p in vocab.prompts)
        if self._fused:
            self._fold_vocabulary()

    def set_builtin_names(self, names: Sequence[str]) -> None:
        """Name the classes of a prompt-free model's built-in vocabulary (one per class of its head, in order).

        Raises:
            VocabularyError: not a prompt-free model, or not one name per built-in class.
        """
        if not self.prompt_free:
            raise VocabularyError("only a prompt-free model has a built-in vocabulary; use set_classes")
        if len(names) != self.head.prompt_free:
            raise VocabularyError(f"the built-in vocabulary has {self.head.prompt_free} classes, got {len(names)} names")
        self._names = tuple(str(n) for n in names)
        self._prompts = tuple((n,) for n in self._names)

    def _prompt_free_message(self) -> str:
        return (
            f"'{self.config.name}' is a prompt-free model: it scores its built-in vocabulary of "
            f"{self.head.prompt_free} classes (see model.names) with fixed layers, and ultralytics removed the text "
            "layers when it made it, so it takes no text prompts. For free-text classes, convert the text-prompted "
            "checkpoint of the same model (e.g. yoloe-11s-seg.pt instead of yoloe-11s-seg-pf.pt)"
        )

    @property
    def vocabulary(self) -> Vocabulary:
        projected = self.class_projected.cpu().numpy() if len(self.class_projected) == len(self._names) else None
        return Vocabulary(self._names, self._prompts, self.class_embeddings.detach().float().cpu().numpy().copy(),
                          projected)  # fmt: skip

    def embed_visual(self, image: Any, boxes: Any, *, imgsz: int | tuple[int, int] | None = None) -> np.ndarray:
        """Embeddings of example boxes in an image, one per box: ``(M, D)`` float32, L2-normalised rows (see
        :func:`ovdet.model.visual.embed_visual`; for YOLOE they are in its projected space).

        Raises:
            VocabularyError: a bad box, or one smaller than one cell of the finest grid at the input size.
            SourceError: an unreadable image.
        """
        from .visual import embed_visual

        return embed_visual(self, image, boxes, imgsz=imgsz)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        if self._fused:
            raise FusedModelError("cannot load weights into a fused model (model.fuse()); load them, then fuse")
        # the vocabulary may have any size: take the saved one's shape instead of failing on a mismatch
        saved = state_dict.get(prefix + "class_embeddings")
        if saved is not None and saved.shape != self.class_embeddings.shape:
            self.class_embeddings = torch.empty_like(saved, device=self.class_embeddings.device)
            self.class_projected = torch.zeros(len(saved), dtype=torch.bool, device=self.class_embeddings.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ inference-only folding
    @property
    def is_fused(self) -> bool:
        """Whether :meth:`fuse` was called: BatchNorms folded away, inference only."""
        return self._fused

    def fuse(self) -> OVDetector:
        """Fold the model for faster inference, in place; returns ``self`` (in eval mode).

        Every Conv's BatchNorm is folded into its convolution, and the vocabulary is folded into the head's scoring
        convs and the text-guided neck's attention (YOLO-World's reparameterisation), then refolded by every later
        :meth:`set_classes`. Weights move to channels-last memory, which oneDNN (CPU) and cuDNN convolve faster, as
        ultralytics' predictor does. Outputs equal the unfused model's up to float rounding. ``model(images)`` (no
        text) and :meth:`predict` use the folded path; ``model(images, text)`` still scores any other text exactly.

        A fused model is for inference only: ``train()``, ``save()`` and ``load_state_dict()`` raise
        :class:`~ovdet.errors.FusedModelError`. Save (or keep) the unfused model for those.
        """
        from .fuse import fuse_conv_bn_

        if not self._fused:
            self.eval()
            with torch.no_grad():
                fuse_conv_bn_(self)
            self.to(memory_format=torch.channels_last)
            self._fused = True
        self._fold_vocabulary()
        return self

    def _vocabulary_key(self) -> tuple[int, int]:
        return self.class_embeddings.data_ptr(), self.class_embeddings._version

    def _fold_vocabulary(self) -> None:
        if len(self.class_embeddings) == 0:
            self._folded_for = None
            return
        projected = self.class_projected
        flags = {"projected": projected} if len(projected) == len(self.class_embeddings) and projected.any() else {}
        with torch.no_grad():
            self.neck.fold_text(self.class_embeddings)
            self.head.fold_text(self.class_embeddings, **flags)
        self._folded_for = self._vocabulary_key()

    @property
    def fast_predict(self) -> bool:
        """Whether eval-mode prediction runs a folded copy of the model (default ``True``; see the class docstring).
        Assigning it drops the copy, so the next prediction builds a fresh one if still on."""
        return self._fast_predict

    @fast_predict.setter
    def fast_predict(self, value: bool) -> None:
        self._fast_predict = bool(value)
        self._inference_copy.clear()

    def train(self, mode: bool = True) -> OVDetector:
        if mode and "_inference_copy" in self.__dict__:
            self._inference_copy.clear()  # training changes the weights: free the copy's memory now
        if mode and getattr(self, "_fused", False):
            raise FusedModelError(
                "this model was fused for inference (model.fuse()): its BatchNorms are folded into the convolutions, "
                "so it cannot train; train the unfused model (ovdet.load or ovdet.build it again) and fuse a copy "
                "for inference"
            )
        return super().train(mode)

    # ------------------------------------------------------------------ images in, results out
    @torch.inference_mode()
    def _detect_batch(
        self, images: list[np.ndarray], size: tuple[int, int], **select: Any
    ) -> list[Result]:
        """One forward pass over images that letterbox to the same input shape (see :meth:`Predictor.detect`)."""
        fast = self._fast_predict and not self._fused and not self.training and len(self.class_embeddings) > 0
        model = self._inference_copy.get(self) if fast else self  # the folded copy: fuse()'s speed, this model kept
        was_training = model.training
        model.eval()
        try:
            batch, letterboxes = preprocess(images, size, stride=self.stride, device=model.device)
            if batch.device.type == "cpu" and torch.backends.mkldnn.is_available():
                # oneDNN convolves channels-last input ~20% faster, even with contiguous weights (ultralytics'
                # predictor converts the model itself; this leaves the model as it is)
                batch = batch.contiguous(memory_format=torch.channels_last)
            out = model(batch.to(model.class_embeddings.dtype))  # the vocabulary, folded once fused
            boxes = decode_boxes(out)  # (B, A, 4) in input pixels
            scores = out.class_logits.sigmoid()  # (B, K, A)
        finally:
            model.train(was_training)
        return results_from_outputs(
            boxes, scores, letterboxes, self._names, end2end=model.end2end, mask_coefficients=out.mask_coefficients,
            protos=out.protos, **select,
        )  # fmt: skip

    # ------------------------------------------------------------------ export
    def export(
        self,
        format: str,
        path: str | os.PathLike,
        *,
        vocabulary: str = "folded",
        imgsz: int | tuple[int, int] | None = None,
        opset: int = 17,
        int8: bool = False,
        calibration: Any = None,
    ) -> str:
        """Export the model; returns the written path. This model is not changed.

        ``format="onnx"``: images ``(B, 3, H, W)`` → decoded boxes and scores, dynamic batch and size, metadata
        included (see :mod:`ovdet.model.export`); predict with ``ovdet.load_onnx(path)``, which needs no torch.

        Args:
            vocabulary: ``"folded"`` (default): the current classes folded in, fastest. ``"runtime"``: the graph
                also takes ``class_embeddings`` ``(K, D)``, any K, so ``load_onnx(path).set_classes([...])`` changes
                classes (names are embedded with the exported text encoder, see ``ovdet.export_text_encoder``).
            imgsz: Tracing size and the default inference size recorded in the file.
            opset: ONNX opset.
            int8: INT8 static quantisation (QDQ) through ONNX Runtime, calibrated on ``calibration`` images.
            calibration: Images for ``int8`` (a folder, glob or list, as ``predict`` takes).

        Raises:
            ValueError: an unknown format or vocabulary mode; ``int8`` without ``calibration``.
            VocabularyError: no vocabulary is set where one is needed.
            ConfigError: ``path`` is a folder, or a file ovdet did not write.
        """
        if format != "onnx":
            raise ValueError(f"unknown export format {format!r}; supported: 'onnx'")
        from .export import export_onnx

        return str(export_onnx(self, path, vocabulary=vocabulary, imgsz=imgsz, opset=opset, int8=int8,
                               calibration=calibration))  # fmt: skip

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike, *, half: bool = False, overwrite: bool = False) -> str:
        """Write ``model.safetensors`` + ``config.json`` to ``folder`` atomically (see :mod:`ovdet.model.serialization`).

        Args:
            folder: Destination. An existing folder is replaced only if it is empty or a model ovdet saved; a folder
                holding anything else is refused (nothing is touched) unless ``overwrite``.
            half: Store weights as float16 (half the size; they load back as float32).
            overwrite: Replace ``folder`` and everything in it.

        Returns the folder path. No pickle is written; ``ovdet.load(folder)`` restores the model and its vocabulary.

        Raises:
            FusedModelError: the model was fused.
            OutputError: ``folder`` is a file, holds files ovdet did not write, or cannot be written.
        """
        if self._fused:
            raise FusedModelError(
                "a fused model (model.fuse()) cannot be saved: its BatchNorms are folded away; save the model before "
                "fusing it, and fuse again after ovdet.load"
            )
        from .serialization import save_detector

        return save_detector(self, folder, half=half, overwrite=overwrite)
