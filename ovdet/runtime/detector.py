"""``OnnxDetector``: prediction from an exported ONNX file with ONNX Runtime; no torch.

Its ``predict`` / ``predict_iter`` / ``stream`` / ``detect`` take the same arguments and return the same
:class:`~ovdet.Result` as :class:`~ovdet.OVDetector`'s (the same letterboxing, selection and NMS code runs). An export
with ``vocabulary="runtime"`` takes the class embeddings as an input, so :meth:`OnnxDetector.set_classes` changes
classes at run time: names are embedded through the embedding cache and, for prompts not cached yet, the exported
text encoder; one with the vocabulary folded in predicts the classes it was exported with. Classes given by example
(visual prompts) are embedded by the PyTorch model before export: an export keeps them, but cannot read new examples.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, VocabularyError
from ..prompts import is_visual, prompt_from_json, reusable_rows
from ..results import Result
from ..text.cache import DEFAULT_CACHE
from ..text.tuned import TunedEmbeddings, vocabulary_with_tuned
from ..text.vocabulary import ClassSpec, Vocabulary, normalize_classes
from .letterbox import letterbox_batch
from .postprocess import results_from_outputs
from .predictor import Predictor
from .session import DETECTOR_FILE, TEXT_ENCODER_FILE, open_session
from .text import OnnxTextEncoder

__all__ = ["OnnxDetector", "load_onnx", "decode_embeddings", "encode_embeddings"]

logger = logging.getLogger(__name__)


def encode_embeddings(embeddings: np.ndarray) -> str:
    """A ``(K, D)`` float32 matrix as base64 text (little-endian), for the JSON metadata."""
    return base64.b64encode(np.ascontiguousarray(embeddings, dtype="<f4").tobytes()).decode("ascii")


def decode_embeddings(text: str, dim: int) -> np.ndarray:
    """The inverse of :func:`encode_embeddings`: ``(K, dim)`` float32."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(-1, dim).astype(np.float32)


class _CachedPrompts:
    """Stands in for a text encoder where none was exported: serves prompts from the embedding cache only."""

    def __init__(self, key: str, dim: int, spec: str | None, where: Path, travels: bool = False):
        self.key, self.dim, self.spec, self.where, self.travels = key, dim, spec, where, travels

    def encode(self, texts: Sequence[str], *, device: Any = None) -> np.ndarray:
        found = DEFAULT_CACHE.get(self.key, texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            # a tower carried in the checkpoint has no spec to fetch it by: it is exported from the model itself
            source = "ovdet.load(MODEL).text_encoder" if self.travels else repr(self.spec)
            raise VocabularyError(
                f"no text encoder to embed {', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}: "
                f"export it once where PyTorch is installed, ovdet.export_text_encoder({source}, "
                f"'{self.where / TEXT_ENCODER_FILE}') (or pass load_onnx(..., text_encoder=PATH)), or give "
                "set_classes(names, embeddings=...)"
            )
        return np.stack([found[t] for t in texts])


class OnnxDetector(Predictor):
    """A detector exported with ``model.export("onnx", path)``, run by ONNX Runtime.

    Args:
        path: The detector ``.onnx`` file, or a bundle folder holding ``model.onnx``.
        text_encoder: A text-encoder ``.onnx`` written by ``ovdet.export_text_encoder``, used by :meth:`set_classes`
            for prompts not in the embedding cache. Default: ``text_encoder.onnx`` beside the detector, if present.
        threads: ONNX Runtime intra-op threads (``None``: its default, all cores).
        providers: ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).

    Attributes:
        vocabulary_mode: ``"runtime"`` (class embeddings are an input) or ``"folded"`` (fixed classes).
        info: The export's metadata (names, stride, size, text encoder, quantisation, ...).

    Raises:
        CheckpointError: not a readable ONNX file exported by ovdet, or a text encoder that is not the one the
            detector was trained with.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        text_encoder: str | os.PathLike | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
    ):
        path = Path(path)
        if path.is_dir():
            if not (path / DETECTOR_FILE).is_file():
                found = sorted(p.name for p in path.glob("*.onnx"))
                listed = f"it holds {', '.join(found[:5])}; give that file's path" if found else "it holds no .onnx file"
                raise CheckpointError(f"{path} is a folder without {DETECTOR_FILE} (the detector of a bundle); {listed}")
            path = path / DETECTOR_FILE
        self.session, self.info = open_session(path, kind="detector", threads=threads, providers=providers)
        self.path = path
        info = self.info
        self.vocabulary_mode: str = info.get("vocabulary", "folded")
        self.stride = int(info["stride"])
        self.default_imgsz = tuple(info["imgsz"])
        self.embed_dim = int(info.get("embed_dim") or 0)
        self._threads, self._providers = threads, providers
        self._text_encoder_path = Path(text_encoder) if text_encoder is not None else None
        self._text_encoder: Any = None
        names = tuple(info.get("names") or ())
        prompts = tuple(tuple(map(prompt_from_json, p)) for p in info.get("prompts") or [[n] for n in names])
        self._names, self._prompts = names, prompts
        self._projected = np.array(info.get("projected") or [False] * len(names), dtype=bool)
        self._takes_projected = "class_projected" in {i.name for i in self.session.get_inputs()}
        self._embeddings: np.ndarray | None = None
        if self.vocabulary_mode == "runtime" and info.get("embeddings"):
            self._embeddings = decode_embeddings(info["embeddings"], self.embed_dim)
        self.tuned: TunedEmbeddings | None = None  # prompt-tuned vectors by class name (ovdet.text.tuned)
        if self.vocabulary_mode == "runtime" and info.get("tuned"):
            tuned = info["tuned"]
            self.tuned = TunedEmbeddings(tuple(tuned["names"]), decode_embeddings(tuned["embeddings"], self.embed_dim))
        if text_encoder is not None and self.vocabulary_mode == "runtime":
            self.text_encoder  # noqa: B018 (load now: a wrong file fails here, not at the first set_classes)
        elif text_encoder is not None:
            logger.warning("%s has its vocabulary folded in: the text encoder %s is not used", path, text_encoder)

    def __repr__(self) -> str:
        return f"OnnxDetector({str(self.path)!r}, {self.vocabulary_mode} vocabulary, {len(self._names)} classes)"

    @property
    def names(self) -> list[str]:
        """The class names of the current vocabulary."""
        return list(self._names)

    @property
    def prompts(self) -> dict[str, list[Any]]:
        """Each class's prompts (texts, and :class:`~ovdet.prompts.VisualPrompt` records of classes given by
        example)."""
        return {n: list(p) for n, p in zip(self._names, self._prompts)}

    @property
    def text_encoder(self) -> OnnxTextEncoder | _CachedPrompts:
        """The text encoder :meth:`set_classes` embeds names with (loaded on first use; see the class docstring).

        Raises:
            VocabularyError: a folded export (it has no text input).
            CheckpointError: a text encoder other than the detector's own.
        """
        if self._text_encoder is None:
            expected = self.info.get("text_encoder") or {}
            if self.vocabulary_mode != "runtime" or not expected:
                raise VocabularyError(f"{self.path} has its vocabulary folded in; it uses no text encoder")
            path = self._text_encoder_path
            if path is None and (self.path.parent / TEXT_ENCODER_FILE).is_file():
                path = self.path.parent / TEXT_ENCODER_FILE
            if path is None:
                where = self.path.parent
                self._text_encoder = _CachedPrompts(expected["key"], self.embed_dim, expected.get("spec"), where,
                                                expected.get("travels", False))
            else:
                encoder = OnnxTextEncoder(path, threads=self._threads, providers=self._providers)
                if encoder.key != expected["key"]:
                    raise CheckpointError(
                        f"{path} is text encoder '{encoder.spec}' ({encoder.key}), but {self.path} was trained with "
                        f"'{expected.get('spec')}' ({expected['key']}); export that one with "
                        f"ovdet.export_text_encoder"
                    )
                self._text_encoder = encoder
        return self._text_encoder

    # ------------------------------------------------------------------ vocabulary
    def set_classes(self, classes: ClassSpec, embeddings: Any = None) -> OnnxDetector:
        """Set the classes to detect; returns ``self`` (as ``OVDetector.set_classes``).

        Args:
            classes: Class names, or a dict name → prompts (several prompts: their re-normalised mean). Classes given
                by example that the export carries (the prompts of a class in :attr:`prompts`, under any name) keep
                their embeddings, beside any text classes; new example boxes need the PyTorch model (see below).
            embeddings: Optional ``(len(classes), D)`` array used instead of the text encoder.

        Raises:
            VocabularyError: bad class lists or embeddings; prompts neither cached nor encodable (no text encoder);
                visual prompts this export has not embedded; or a folded export asked for other classes than its own.
        """
        if self.vocabulary_mode != "runtime":
            names, prompts = normalize_classes(classes)
            if embeddings is None and (names, prompts) == (self._names, self._prompts):
                return self
            shown = f"{', '.join(self._names[:5])}{', ...' if len(self._names) > 5 else ''}"
            if self.info.get("prompt_free"):
                raise VocabularyError(
                    f"{self.path} is a prompt-free model: it detects its built-in vocabulary of {len(self._names)} "
                    f"classes ({shown}) and has no text input, so no export of it takes other classes; filter its "
                    "results by label, or convert the same model with text prompts (e.g. yoloe-11s-seg.pt instead of "
                    "yoloe-11s-seg-pf.pt)"
                )
            raise VocabularyError(
                f"{self.path} has its {len(self._names)} classes folded in ({shown}); to change classes at run "
                "time, export with model.export('onnx', path, vocabulary='runtime')"
            )
        if embeddings is not None:
            vocab = Vocabulary.from_embeddings(classes, embeddings, self.embed_dim)
        else:
            vocab = self._vocabulary_from_classes(classes)
        self.set_vocabulary(vocab)
        return self

    def _vocabulary_from_classes(self, classes: ClassSpec) -> Vocabulary:
        """Text classes through the text encoder (or the tuned table); classes with visual prompts only where this
        export carries them."""
        names, prompts = normalize_classes(classes)
        reuse = reusable_rows(self._prompts, prompts)
        new = [names[k] for k, p in enumerate(prompts) if k not in reuse and any(map(is_visual, p))]
        if new:
            raise VocabularyError(
                f"class {new[0]!r} is given by example (visual prompts) that {self.path} has not embedded: an ONNX "
                "export cannot read example boxes; set the classes in PyTorch (model.set_classes({...: "
                "[VisualPrompt(image, boxes)]})) and export the model again (model.export('onnx', path, ...))"
            )
        text = {k: p for k, p in enumerate(prompts) if k not in reuse}
        rows = np.zeros((len(names), self.embed_dim), np.float32)
        projected = np.zeros(len(names), bool)
        if text:  # tuned names (prompt tuning) take their tuned vectors, other names the text encoder
            encoded = vocabulary_with_tuned({names[k]: list(p) for k, p in text.items()}, self.text_encoder, self.tuned)
            rows[list(text)] = encoded.embeddings
        for k, j in reuse.items():
            rows[k], projected[k] = self._embeddings[j], self._projected[j]
        return Vocabulary(names, prompts, rows, projected)

    @property
    def vocabulary(self) -> Vocabulary:
        """The current vocabulary (for a folded export: names and prompts, embeddings ``(K, 0)``: they are in the
        graph)."""
        emb = self._embeddings if self._embeddings is not None else np.zeros((len(self._names), 0), np.float32)
        return Vocabulary(self._names, self._prompts, emb.copy(), self._projected.copy())

    def set_vocabulary(self, vocab: Vocabulary) -> None:
        """Install a ready :class:`~ovdet.text.vocabulary.Vocabulary` (as ``OVDetector.set_vocabulary``)."""
        if self.vocabulary_mode != "runtime":
            self.set_classes(dict(zip(vocab.names, vocab.prompts)))  # accepts only its own classes
            return
        if vocab.embeddings.shape[-1] != self.embed_dim:
            raise VocabularyError(f"vocabulary is {vocab.embeddings.shape[-1]}-d, the model expects {self.embed_dim}-d")
        if vocab.projected.any() and not self._takes_projected:
            raise VocabularyError(
                f"{self.path} takes no class_projected input, so no class can be marked as projected (such rows are a "
                "YOLOE model's visual prompts): export the YOLOE model with those classes set"
            )
        self._names, self._prompts = tuple(vocab.names), tuple(tuple(p) for p in vocab.prompts)
        self._embeddings = np.ascontiguousarray(vocab.embeddings, dtype=np.float32)
        self._projected = np.array(vocab.projected, dtype=bool)

    # ------------------------------------------------------------------ images in, results out
    def _detect_batch(self, images: list[np.ndarray], size: tuple[int, int], **select: Any) -> list[Result]:
        """One ONNX Runtime run over images that letterbox to the same input shape (see :meth:`Predictor.detect`)."""
        batch, letterboxes = letterbox_batch(images, size, stride=self.stride)
        feeds = {"images": batch}
        if self.vocabulary_mode == "runtime":
            feeds["class_embeddings"] = self._embeddings
            if self._takes_projected:
                feeds["class_projected"] = self._projected
        masks = bool(self.info.get("masks"))
        outputs = self.session.run(["boxes", "scores", *(["mask_coefficients", "protos"] if masks else [])], feeds)
        boxes, scores, *mask_outputs = outputs  # segmentation models: mask coefficients and prototypes
        return results_from_outputs(
            boxes, scores, letterboxes, self._names, end2end=bool(self.info.get("end2end", False)),
            mask_coefficients=mask_outputs[0] if masks else None, protos=mask_outputs[1] if masks else None, **select,
        )  # fmt: skip


def load_onnx(
    path: str | os.PathLike,
    *,
    text_encoder: str | os.PathLike | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> OnnxDetector:
    """A detector from a file written by ``model.export("onnx", path)`` (or a bundle folder), run with ONNX Runtime.

    Imports no torch. Its ``predict`` takes the same arguments and returns the same results as
    ``OVDetector.predict``; an export with ``vocabulary="runtime"`` also takes ``set_classes``. See
    :class:`OnnxDetector` for the arguments.

    Raises:
        CheckpointError: not a readable ONNX file exported by ovdet.
    """
    return OnnxDetector(path, text_encoder=text_encoder, threads=threads, providers=providers)
