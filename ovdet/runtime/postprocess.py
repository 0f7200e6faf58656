"""From decoded outputs to detections in original-image pixels: class selection (NMS, or the top-k selection of
NMS-free end-to-end heads), un-letterboxing and instance masks (numpy, OpenCV).

Torch-free, so the ONNX Runtime detector and the PyTorch one assemble their :class:`~ovdet.Result` with the same code:
the PyTorch detector hands its decoded tensors over as numpy arrays (see ``ovdet.model.postprocess``).

NMS is OpenCV's (``cv2.dnn.NMSBoxes``), run one class at a time: this keeps exactly the boxes that
``torchvision.ops.batched_nms`` keeps (tests/runtime/test_postprocess.py checks it), where OpenCV's own
``NMSBoxesBatched`` (one pass over all classes, offset apart) is quadratic in the total box count and takes seconds on
the 30,000 candidates that evaluation at ``conf=0.001`` can produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..results import Result
from .letterbox import Letterbox
from .masks import masks_from_prototypes

__all__ = [
    "MAX_NMS",
    "ClassMap",
    "nms",
    "select_detections",
    "select_topk",
    "unletterbox_boxes",
    "result_from_outputs",
    "results_from_outputs",
]

MAX_NMS = 30000  # candidates kept for NMS, as ultralytics


@dataclass(frozen=True)
class ClassMap:
    """How scored prompts become output classes: several prompts per class, negatives, per-class thresholds.

    The vocabulary holds every prompt as its own row, in class order: the prompts of class 0, then of class 1, ...,
    then one row per negative prompt. Selection takes each anchor's maximum over one class's prompts *before* NMS, so
    an object matched by two synonyms is one box of its class, not two (autodistill's duplicate boxes). Negatives
    are classes of their own during selection: an anchor whose best score is a negative is not a detection of any
    output class (and with agnostic NMS a negative box suppresses the output boxes it overlaps); negative
    detections are then dropped, before ``max_det`` is applied.

    Attributes:
        names: The output class names, ``(C,)``.
        prompt_counts: How many consecutive vocabulary rows each output class owns, ``(C,)`` (each ≥ 1).
        num_negatives: Vocabulary rows after the classes' prompts that are negatives (each its own class).
        conf: Score threshold per output class, ``(C,)``; a negative takes part above ``min(conf)``.
    """

    names: tuple[str, ...]
    prompt_counts: tuple[int, ...]
    num_negatives: int = 0
    conf: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.names or len(self.prompt_counts) != len(self.names) or min(self.prompt_counts) < 1:
            raise ValueError(f"a ClassMap needs one prompt count >= 1 per class, got {self.prompt_counts} for "
                             f"{len(self.names)} classes")  # fmt: skip
        conf = tuple(float(c) for c in self.conf) or (0.25,) * len(self.names)
        if len(conf) != len(self.names) or not all(0 <= c <= 1 for c in conf):
            raise ValueError(f"a ClassMap needs one threshold in [0, 1] per class, got {self.conf}")
        if self.num_negatives < 0:
            raise ValueError(f"num_negatives must be >= 0, got {self.num_negatives}")
        object.__setattr__(self, "conf", conf)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "prompt_counts", tuple(int(n) for n in self.prompt_counts))

    @property
    def num_prompts(self) -> int:
        """Vocabulary rows the map reads: every class's prompts plus the negatives."""
        return sum(self.prompt_counts) + self.num_negatives

    @property
    def min_conf(self) -> float:
        """The lowest threshold: no anchor below it can be selected (the GPU pre-filter's bound)."""
        return min(self.conf)

    def thresholds(self) -> np.ndarray:
        """``(C + negatives,)`` float32: each merged class's threshold, negatives at :attr:`min_conf`.

        float32 as the scores are: ``predict``'s ``scores > conf`` compares float32 scores with ``float32(conf)``
        (NumPy's and torch's Python scalars take the array's dtype), so a score exactly at a threshold is dropped by
        both; float64 thresholds would keep ``float32(0.3) > 0.3`` here only."""
        return np.array([*self.conf, *[self.min_conf] * self.num_negatives], np.float32)

    def merge(self, scores: np.ndarray) -> np.ndarray:
        """``(P, A)`` prompt scores → ``(C + negatives, A)``: the maximum over each class's prompts.

        Raises:
            ValueError: ``scores`` does not have :attr:`num_prompts` rows.
        """
        if scores.shape[0] != self.num_prompts:
            raise ValueError(f"this ClassMap reads {self.num_prompts} prompt rows, got scores of shape {scores.shape}")
        if self.num_prompts == len(self.names) + self.num_negatives:
            return scores  # one prompt per class: nothing to merge
        starts = np.concatenate([[0], np.cumsum(self.prompt_counts)[:-1]])
        merged = np.maximum.reduceat(scores[: sum(self.prompt_counts)], starts, axis=0)
        return np.concatenate([merged, scores[sum(self.prompt_counts) :]], 0) if self.num_negatives else merged


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Per-class non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` xyxy.
        scores: ``(N,)`` scores, all > 0 (candidates above a confidence threshold).
        class_ids: ``(N,)`` integer class of each box; boxes of different classes never suppress each other.
        iou: A box is suppressed by a higher-scored box of its class whose IoU with it exceeds this.

    Returns:
        ``(M,)`` int64 indices of the kept boxes, highest score first (ties in input order): the boxes
        ``torchvision.ops.batched_nms`` keeps.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = boxes.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]  # OpenCV takes (x, y, w, h)
    order = np.argsort(class_ids, kind="stable")
    starts = np.flatnonzero(np.diff(class_ids[order])) + 1
    kept = []
    for group in np.split(order, starts):
        if len(group) == 1:
            kept.append(group)
            continue
        keep = cv2.dnn.NMSBoxes(xywh[group], scores[group].astype(np.float32), 0.0, float(iou))
        kept.append(group[np.asarray(keep, dtype=np.int64).reshape(-1)])
    keep = np.concatenate(kept)
    return keep[np.lexsort((keep, -scores[keep]))]  # score descending, then input order


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
    class_map: ClassMap | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image: ``boxes`` ``(A, 4)`` xyxy, ``scores`` ``(K, A)`` probabilities.

    Each anchor keeps its best class (or, with ``multi_label``, every class above ``conf``, as for mAP evaluation);
    candidates above ``conf`` (at most :data:`MAX_NMS`, the best) go through :func:`nms`, per class unless
    ``agnostic``. This is ultralytics' ``non_max_suppression`` (tested against it).

    With a ``class_map``, the ``K`` prompt rows are first merged into its classes (:meth:`ClassMap.merge`), each
    class has its own threshold (``conf`` is then ignored), and negative detections are dropped after NMS, before
    ``max_det``; class ids index ``class_map.names``.

    Returns:
        ``(boxes (N, 4) float32, scores (N,) float32, class_ids (N,) int64, anchors (N,) int64)``, best score first,
        N ≤ ``max_det``; ``anchors`` index each detection's anchor (for its mask coefficients).
    """
    thresholds = None
    if class_map is not None:
        scores, thresholds = class_map.merge(scores), class_map.thresholds()
        conf, multi_label = float(thresholds.min()), False
    if multi_label and scores.shape[0] > 1:
        cls, anchor = np.nonzero(scores > conf)
        score = scores[cls, anchor]
    else:
        best = scores.max(0)  # a reduction over rows: fast; the arg-max is taken for candidates only
        anchor = np.flatnonzero(best > conf)
        score = best[anchor]
        cls = scores[:, anchor].argmax(0)
    if thresholds is not None:  # each class above its own threshold
        above = score > thresholds[cls]
        anchor, score, cls = anchor[above], score[above], cls[above]
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        anchor, score, cls = anchor[top], score[top], cls[top]
    box = boxes[anchor].astype(np.float32)
    keep = nms(box, score, np.zeros_like(cls) if agnostic else cls, iou)
    if class_map is not None:
        keep = keep[cls[keep] < len(class_map.names)]  # negatives competed; they are never returned
    keep = keep[:max_det]
    return box[keep], score[keep].astype(np.float32), cls[keep].astype(np.int64), anchor[keep].astype(np.int64)


def _topk(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first (ties in index order, as a stable sort gives them)."""
    if k < len(values):
        part = np.argpartition(-values, k - 1)[:k]
        return part[np.lexsort((part, -values[part]))]
    return np.argsort(-values, kind="stable")


def select_topk(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    conf: float,
    max_det: int,
    agnostic: bool = False,
    class_map: ClassMap | None = None,
    **_: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image from an end-to-end (one-to-one) head, without NMS, as ultralytics selects them.

    ``boxes`` ``(A, 4)`` xyxy, ``scores`` ``(K, A)``. ultralytics' ``Detect.postprocess`` with the predictor's
    ``max_det = max(max_det, 300)``: the ``k`` anchors with the best class score, then the best ``k`` (anchor, class)
    pairs among them (or, with ``agnostic``, each anchor's best class), then those above ``conf``, at most ``max_det``.
    (NMS settings, ``iou`` and ``multi_label``, do not apply and are ignored.) A ``class_map`` merges prompts and
    sets thresholds as in :func:`select_detections`; negatives take part in the top-k, an anchor a negative scores best
    gives no detection, and negatives are then dropped.

    Returns:
        As :func:`select_detections`.
    """
    thresholds = None
    if class_map is not None:
        scores, thresholds = class_map.merge(scores), class_map.thresholds()
    num_classes, num_anchors = scores.shape
    k = min(max(max_det, 300), num_anchors)
    if agnostic:
        best = scores.max(0)
        anchor = _topk(best, k)
        score, cls = best[anchor], scores[:, anchor].argmax(0)
    else:
        candidates = _topk(scores.max(0), k)  # (k,) anchors
        flat = scores[:, candidates].T.reshape(-1)  # (k * K,) anchor-major, as ultralytics flattens (B, k, nc)
        index = _topk(flat, k)
        score, anchor, cls = flat[index], candidates[index // num_classes], index % num_classes
    if class_map is not None:
        # an anchor whose best class is a negative gives no detection of any class, as under NMS (where each
        # anchor keeps its best class only); negative pairs themselves are never returned
        won = scores[:, anchor].argmax(0) < len(class_map.names)
        keep = np.flatnonzero((score > thresholds[cls]) & (cls < len(class_map.names)) & won)[:max_det]
    else:
        keep = np.flatnonzero(score > conf)[:max_det]
    return (boxes[anchor[keep]].astype(np.float32), score[keep].astype(np.float32), cls[keep].astype(np.int64),
            anchor[keep].astype(np.int64))  # fmt: skip


def unletterbox_boxes(boxes: np.ndarray, info: Letterbox) -> np.ndarray:
    """Map xyxy boxes ``(N, 4)`` from network-input pixels back to the original image, clipped to it."""
    (gx, gy), (left, top) = info.gain, info.pad
    h, w = info.orig_shape
    out = (boxes - np.array([left, top, left, top], np.float32)) / np.array([gx, gy, gx, gy], np.float32)
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out.astype(np.float32)


def result_from_outputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    info: Letterbox,
    names: Sequence[str],
    *,
    end2end: bool = False,
    mask_coefficients: np.ndarray | None = None,
    protos: np.ndarray | None = None,
    **select,
) -> Result:
    """One image's :class:`Result` from decoded ``boxes`` ``(A, 4)`` (xyxy, input pixels) and ``scores`` ``(K, A)``
    (probabilities): :func:`select_detections` (or :func:`select_topk` for an ``end2end`` head; ``select``: their
    keyword arguments), then boxes back to original pixels.

    With ``mask_coefficients`` ``(M, A)`` and ``protos`` ``(M, H/4, W/4)``, the result gets instance masks in original
    pixels (:mod:`ovdet.runtime.masks`); as ultralytics' segmentation predictor, detections whose mask is empty are
    dropped. With ``select["class_map"]`` (a :class:`ClassMap`), the result's classes are the map's names.
    """
    if select.get("class_map") is not None:
        names = select["class_map"].names
    b, s, c, a = (select_topk if end2end else select_detections)(boxes, scores, **select)
    b = unletterbox_boxes(b, info)
    masks = None
    if mask_coefficients is not None and protos is not None:
        masks = masks_from_prototypes(protos, mask_coefficients[:, a].T, b, info)
        keep = masks.areas > 0
        if not keep.all():
            b, s, c, masks = b[keep], s[keep], c[keep], masks[keep]
    return Result(b, s, c, tuple(names), info.orig_shape, masks=masks)


def results_from_outputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    letterboxes: Sequence[Letterbox],
    names: Sequence[str],
    *,
    conf: float,
    iou: float,
    max_det: int,
    agnostic: bool = False,
    multi_label: bool = False,
    end2end: bool = False,
    mask_coefficients: np.ndarray | None = None,
    protos: np.ndarray | None = None,
    class_map: ClassMap | None = None,
) -> list[Result]:
    """One :class:`Result` per image from a batch: ``boxes`` ``(B, A, 4)``, ``scores`` ``(B, K, A)``, and for
    segmentation models ``mask_coefficients`` ``(B, M, A)`` and ``protos`` ``(B, M, H/4, W/4)``."""
    select = {"conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic, "multi_label": multi_label,
              "class_map": class_map}  # fmt: skip
    return [
        result_from_outputs(
            boxes[i], scores[i], info, names, end2end=end2end,
            mask_coefficients=None if mask_coefficients is None else mask_coefficients[i],
            protos=None if protos is None else protos[i], **select,
        )  # fmt: skip
        for i, info in enumerate(letterboxes)
    ]
