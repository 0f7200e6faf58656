"""Visual prompts → class embeddings: YOLOE's visual-prompt encoder where a model carries it, else a training-free
readout of the model's own region embeddings.

ovdet's heads score each anchor's region embedding against one vector per class, so a class can be given by example:
its vector is read from regions of an image where the example sits (OWL-ViT's image-conditioned detection, on a YOLO
head). Two readers, chosen by the model:

- **SAVPE** (YOLOE checkpoints that carry ultralytics' visual-prompt encoder, ``config.head.savpe``): exactly
  ultralytics' recipe. The reference image is letterboxed as ultralytics' ``YOLOEVPDetectPredictor`` letterboxes it
  (padded to the whole ``imgsz`` square: unlike its ordinary predictor, it is not made with ``rect=True``), the
  example boxes are mapped into it as
  ``YOLOEVPDetectPredictor`` maps them and rasterised at 1/8 scale by ultralytics' ``LoadVisualPrompt`` (the boxes of
  one prompt become one mask, as ultralytics merges the boxes of one class), and ``SAVPE`` reads the neck's features
  under the mask. Its embeddings live in YOLOE's *projected* text space, so their rows are flagged ``projected``.
- **Readout** (ovdet-*, YOLO-World v1/v2, YOLOE without SAVPE): the region embeddings as the scorer sees them
  (L2-normalised for an L2 scorer, after the BatchNorm of a BatchNorm scorer) at the anchors training would make
  positive for the box (ultralytics' ``TaskAlignedAssigner``: centre inside the box, the ``READOUT_TOPK`` = 10 best;
  with no class score yet, ranked by the IoU of their predicted boxes with the example), averaged; then the image's
  shared direction (its mean region embedding) is projected out, since every region carries it, background
  included, and the result is L2-normalised. A text-guided neck (YOLO-World) runs under a neutral vocabulary (one
  all-zero text), so the readout depends on no class list. An example smaller than one cell of the finest level
  (8 px at the model's input) covers no anchor of its own and is refused rather than read as background.

A class's embedding is the re-normalised mean of one unit vector per prompt: each text's embedding and each visual
prompt's (the mean over its boxes for the readout; SAVPE's one mask per prompt), so examples from several images are
averaged. For YOLOE, text prompts mixed with visual ones are projected first: the mean is taken in the scorer's space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou
from ultralytics.nn.modules.block import BNContrastiveHead

from ..classes import ClassSpec, normalize_classes
from ..errors import VocabularyError
from ..prompts import VisualPrompt, is_visual, reusable_rows
from ..runtime.letterbox import Letterbox, letterbox
from ..text.vocabulary import Vocabulary, l2_normalize
from .postprocess import decode_boxes
from .preprocess import preprocess
from .yoloe_head import YOLOEHead

if TYPE_CHECKING:
    from .detector import OVDetector

__all__ = ["READOUT_TOPK", "embed_visual", "visual_vocabulary", "has_visual_prompts", "reads_projected"]

READOUT_TOPK = 10  # ultralytics' TaskAlignedAssigner topk: how many anchors training makes positive for a box
# ablations for tools/bench_visual.py (README gives the figures): READOUT_TOPK None reads every anchor inside the box;
# READOUT_REMOVES_SHARED False keeps the image's shared direction
READOUT_REMOVES_SHARED = True


def has_visual_prompts(classes: Any) -> bool:
    """Whether a class spec (as ``set_classes`` takes) holds any :class:`~ovdet.prompts.VisualPrompt`."""
    if not hasattr(classes, "values"):
        return False
    return any(is_visual(p) or (isinstance(p, (list, tuple)) and any(map(is_visual, p))) for p in classes.values())


def reads_projected(model: OVDetector) -> bool:
    """Whether the model's visual-prompt rows are in a projected text space (YOLOE), not the raw encoder's."""
    return isinstance(model.head, YOLOEHead)


def _check_model(model: OVDetector) -> None:
    if model.prompt_free:
        raise VocabularyError(model._prompt_free_message())


class _Reference:
    """One reference image run through the model: its network input, and how it was letterboxed (as for prediction,
    or padded to the whole ``size`` with ``square``)."""

    def __init__(self, model: OVDetector, image: np.ndarray, size: tuple[int, int], *, square: bool = False):
        if square:
            boxed, self.letterbox = letterbox(image, size, auto=False, stride=model.stride)
            rgb = np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))[None]
            batch = torch.from_numpy(np.divide(rgb, np.float32(255), dtype=np.float32)).to(model.device)  # as predict
        else:
            batch, (self.letterbox,) = preprocess([image], size, stride=model.stride, device=model.device)
        self.batch = batch.to(model.class_embeddings.dtype)

    def input_boxes(self, boxes: np.ndarray) -> torch.Tensor:
        """Original-pixel xyxy boxes → network-input pixels (the inverse of prediction's un-letterboxing)."""
        lb: Letterbox = self.letterbox
        return torch.as_tensor(boxes * np.array(lb.gain * 2) + np.array(lb.pad * 2), dtype=torch.float32)  # (M, 4)

    def check_sizes(self, model: OVDetector, boxes: np.ndarray, where: str) -> None:
        """Refuse an example smaller than one cell of the finest level at the model's input: no anchor (and, for
        SAVPE, no cell of the 1/8-scale mask) is its own, so only its surroundings would be read."""
        stride = float(min(model.backbone.strides))
        for box, (x0, y0, x1, y1) in zip(boxes, self.input_boxes(boxes).tolist()):
            if x1 - x0 < stride or y1 - y0 < stride:
                raise _too_small(model, self, box, where)


def _too_small(model: OVDetector, ref: _Reference, box: np.ndarray, where: str) -> VocabularyError:
    stride = int(min(model.backbone.strides))
    gain = min(ref.letterbox.gain)
    w, h = (box[2] - box[0]) * ref.letterbox.gain[0], (box[3] - box[1]) * ref.letterbox.gain[1]
    text = "[" + ", ".join(f"{x:g}" for x in box) + "]"
    return VocabularyError(
        f"{where}: box {text} is {w:.1f}x{h:.1f} px at the model's input ({ref.batch.shape[3]}x{ref.batch.shape[2]}, "
        f"the image scaled by {gain:.3g}), smaller than one cell of its finest grid ({stride} px), so the model has "
        f"nothing of the example alone to read; give a box at least {stride / gain:.0f} px wide and high in this "
        "image, or read this image at a larger size (imgsz= of set_classes or embed_visual; --imgsz on the command "
        "line)"
    )


# ---------------------------------------------------------------------------------------------------------- SAVPE
def _savpe_masks(model: OVDetector, ref: _Reference, boxes: np.ndarray, groups: Sequence[int], where: str) -> torch.Tensor:
    """Prompt masks ``(Q, H/8, W/8)`` as ultralytics makes them: boxes mapped into the letterboxed input as
    ``YOLOEVPDetectPredictor._process_single_image`` maps them, then ``LoadVisualPrompt.get_visuals`` (1/8 scale, the
    boxes of one group merged into one mask, groups in sorted order)."""
    from ultralytics.data.augment import LoadVisualPrompt

    ref.check_sizes(model, boxes, where)  # a box of at least one 8-px cell always covers a cell of the mask grid
    src, dst = ref.letterbox.orig_shape, tuple(ref.batch.shape[2:])
    mapped = np.array(boxes, dtype=np.float32)
    gain = min(dst[0] / src[0], dst[1] / src[1])
    mapped *= gain
    mapped[..., 0::2] += round((dst[1] - round(src[1] * gain)) / 2 - 0.1)
    mapped[..., 1::2] += round((dst[0] - round(src[0] * gain)) / 2 - 0.1)
    return LoadVisualPrompt().get_visuals(np.asarray(groups), dst, mapped)


def _savpe_rows(model: OVDetector, ref: _Reference, boxes: np.ndarray, groups: Sequence[int], where: str) -> torch.Tensor:
    masks = _savpe_masks(model, ref, boxes, groups, where).to(ref.batch)  # (Q, H/8, W/8)
    feats = model.neck(model.backbone(ref.batch), None)
    return model.head.savpe(feats, masks[None])[0]  # (Q, D), L2-normalised


# --------------------------------------------------------------------------------------------------------- readout
def _region_embeddings(head: Any, feats: list[torch.Tensor]) -> torch.Tensor:
    """``(B, D, A)`` region embeddings as the scorers compare them with class vectors, anchors in ``make_anchors``'
    order (P3 first, row-major)."""
    if isinstance(head, YOLOEHead):
        branch = head.one2one if head.one2one is not None and head.end2end else head.one2many
        maps = [scorer.norm(embed(x)) for embed, scorer, x in zip(branch.embed, branch.scorers, feats)]
    else:
        maps = []
        for branch, scorer, x in zip(head.embed_branch, head.scorers, feats):
            region = branch(x)
            maps.append(scorer.norm(region) if isinstance(scorer, BNContrastiveHead) else F.normalize(region, dim=1))
    return torch.cat([m.flatten(2) for m in maps], 2)


def _readout_rows(model: OVDetector, ref: _Reference, boxes: np.ndarray, where: str) -> torch.Tensor:
    """One unit row per box ``(M, D)``: the readout described in the module docstring."""
    text = ref.batch.new_zeros(1, 1, model.embed_dim)  # a neutral vocabulary for a text-guided neck
    feats = model.neck(model.backbone(ref.batch), text if model.neck.text_guided else None)
    out = model.head(feats, text)
    predicted = decode_boxes(out)[0].float()  # (A, 4) input pixels
    centres = (out.anchors * out.strides).float()  # (A, 2)
    regions = _region_embeddings(model.head, feats)[0].float()  # (D, A)
    shared = F.normalize(regions.mean(1), dim=0)
    ref.check_sizes(model, boxes, where)
    rows = []
    for box, (x0, y0, x1, y1) in zip(boxes, ref.input_boxes(boxes).tolist()):
        inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)
        candidates = inside.nonzero()[:, 0]  # never empty for a box of at least one cell
        if not len(candidates):
            raise _too_small(model, ref, box, where)
        iou = box_iou(predicted.new_tensor([[x0, y0, x1, y1]]), predicted[candidates])[0]  # on the model's device
        k = len(candidates) if READOUT_TOPK is None else min(READOUT_TOPK, len(candidates))
        vector = regions[:, candidates[iou.topk(k).indices]].mean(1)
        if READOUT_REMOVES_SHARED:
            vector = vector - (vector @ shared) * shared
        rows.append(F.normalize(vector, dim=0))
    return torch.stack(rows)


# ------------------------------------------------------------------------------------------------------ public API
def _rows(
    model: OVDetector, prompt: VisualPrompt, size: tuple[int, int], *, per_box: bool, name: str | None = None
) -> torch.Tensor:
    """Unit rows for one prompt: one per box (``per_box``), else one for the prompt (of class ``name``, for errors)."""
    where = f"visual prompt on {prompt.source}" if prompt.source else "visual prompt"
    where = f"class {name!r}, {where}" if name is not None else where
    savpe = getattr(model.head, "savpe", None) is not None
    ref = _Reference(model, prompt.image, size, square=savpe)
    if savpe:
        groups = range(len(prompt.boxes)) if per_box else [0] * len(prompt.boxes)
        return _savpe_rows(model, ref, prompt.boxes, list(groups), where).float()
    rows = _readout_rows(model, ref, prompt.boxes, where)
    return rows if per_box else F.normalize(rows.mean(0, keepdim=True), dim=1)


class _EvalMode:
    def __init__(self, model: OVDetector):
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def embed_visual(
    model: OVDetector, image: Any, boxes: Any, *, imgsz: int | tuple[int, int] | None = None
) -> np.ndarray:
    """Embeddings of example boxes, one per box: ``(M, D)`` float32, L2-normalised rows.

    Args:
        model: The detector.
        image: A path, BGR ``uint8`` array, PIL image or RGB tensor (as ``predict`` takes one image).
        boxes: ``(M, 4)`` xyxy pixel boxes of examples in ``image``.
        imgsz: The size the image is read at (default: the model's).

    Returns:
        The rows the model's scorer compares regions with: raw text space for ovdet and YOLO-World models, YOLOE's
        projected space for YOLOE (SAVPE's output, equal to ultralytics' ``get_vpe``; see :func:`reads_projected`).

    Raises:
        VocabularyError: a bad or too small box, or a prompt-free model.
        SourceError: an unreadable image.
    """
    _check_model(model)
    prompt = VisualPrompt(image, boxes)
    with _EvalMode(model), torch.inference_mode():
        return _rows(model, prompt, model.inference_size(imgsz), per_box=True).cpu().numpy()


def visual_vocabulary(model: OVDetector, classes: ClassSpec, *, imgsz: int | tuple[int, int] | None = None) -> Vocabulary:
    """A vocabulary whose classes may be given by text and/or by example (see the module docstring).

    Classes with the visual prompts of one of the model's current classes (the same prompts, under any name) keep
    its embedding, unless ``imgsz`` is given and they were read at another size; every other visual prompt's image
    is read (at ``imgsz``, default the model's size) and embedded.

    Raises:
        VocabularyError: bad classes or boxes, an example too small to read, text prompts without a text encoder, or
            a prompt-free model.
        SourceError: a reference image that cannot be read.
    """
    _check_model(model)
    names, prompts = normalize_classes(classes)
    size = model.inference_size(imgsz)
    current = model.vocabulary if model.names else Vocabulary((), (), np.zeros((0, model.embed_dim)))
    # kept as they are, or, for an imgsz asked for, only if read at that size
    reuse = reusable_rows(current.prompts, prompts, imgsz=None if imgsz is None else size)
    # a prompt-tuned name (ovdet.text.tuned) takes its tuned vector in place of its text prompts
    tuned = {k: v for k in range(len(names)) if model.tuned is not None and (v := model.tuned.get(names[k])) is not None}
    texts = sorted({t for k, ps in enumerate(prompts) if k not in reuse and k not in tuned for t in ps
                    if isinstance(t, str)})  # fmt: skip
    text_rows: dict[str, np.ndarray] = {}
    if texts:
        if model.text_encoder is None:
            raise VocabularyError(
                f"this model has no text encoder to embed the text prompts {', '.join(map(repr, texts[:5]))}; give "
                "those classes by example (VisualPrompt) only, or pass embeddings=..."
            )
        encoded = model.text_encoder.encode(texts, device=model.device)
        encoded = encoded.detach().float().cpu().numpy() if hasattr(encoded, "detach") else np.asarray(encoded)
        text_rows = dict(zip(texts, encoded.astype(np.float32)))
    projected_space = reads_projected(model)
    rows, flags = [], []
    with _EvalMode(model), torch.inference_mode():
        for k, class_prompts in enumerate(prompts):
            if k in reuse:
                rows.append(current.embeddings[reuse[k]])
                flags.append(bool(current.projected[reuse[k]]))
                continue
            if k in tuned:
                text = tuned[k][None]
            else:
                text = np.array([text_rows[t] for t in class_prompts if isinstance(t, str)], np.float32)
            text = text.reshape(-1, model.embed_dim)  # (T, D), T may be 0
            visual = [_rows(model, p, size, per_box=False, name=names[k]) for p in class_prompts if is_visual(p)]
            if not visual:
                rows.append(text.mean(0))
                flags.append(False)
                continue
            if len(text) and projected_space:  # averaged where the scorer compares: YOLOE's projected space
                text = model.head.project_text(torch.as_tensor(text).to(model.class_embeddings)).float().cpu().numpy()
            rows.append(np.concatenate([text, torch.cat(visual).cpu().numpy()]).mean(0))
            flags.append(projected_space)
    embeddings = np.stack(rows).astype(np.float32)
    # rows kept from the current vocabulary are already unit length; normalising them again could move their last bit
    # (the norm's rounding depends on the CPU's vector width), so a renamed class would not keep its exact vector
    # (l2_normalize also returns rows already unit length, e.g. tuned vectors, as they are)
    fresh = np.array([k not in reuse for k in range(len(rows))], bool)
    embeddings[fresh] = l2_normalize(embeddings[fresh])

    def keep(p: Any) -> Any:  # what the model keeps of a prompt it read: its record, with the size it read it at
        return p.without_pixels(imgsz=size) if is_visual(p) else p

    kept = tuple(tuple(current.prompts[reuse[k]]) if k in reuse else tuple(map(keep, ps))
                 for k, ps in enumerate(prompts))  # fmt: skip
    return Vocabulary(names, kept, embeddings, projected=flags)
