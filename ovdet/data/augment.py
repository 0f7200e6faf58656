"""Training augmentation with albumentations: mosaic, scale/translate, flips, colour and blur, letterboxed to size.

Boxes move with the pixels (albumentations' bbox processing); boxes left with less than ``min_visibility`` of their
area, or under 2 px, are dropped. Every call is seeded by the caller, so a sample's augmentation depends only on
(seed, epoch, index), not on worker count or order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# albumentations checks PyPI for a newer version when imported (up to 2 s, a warning when offline); ovdet works
# offline and does not phone home. Set NO_ALBUMENTATIONS_UPDATE=0 to have the check.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

__all__ = ["AugmentConfig", "build_transform", "PAD_VALUE"]

PAD_VALUE = 114


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (ultralytics' conventions where they have one).

    Attributes:
        mosaic: Probability of a 2×2 mosaic of four images (detection data only).
        scale: Zoom range ±``scale``.
        translate: Shift range ± fraction of the image.
        degrees: Rotation range ± degrees.
        fliplr: Probability of a horizontal flip.
        hsv_h: Hue jitter, fraction of the hue circle (0 keeps colours exact: colour words stay true).
        hsv_s: Saturation jitter, fraction.
        hsv_v: Brightness jitter, fraction.
        blur: Probability of a mild blur.
        min_visibility: Boxes keeping less than this fraction of their area are dropped.
    """

    mosaic: float = 1.0
    scale: float = 0.5
    translate: float = 0.1
    degrees: float = 0.0
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    blur: float = 0.01
    min_visibility: float = 0.25


def build_transform(imgsz: int, config: AugmentConfig, *, mosaic: bool) -> A.Compose:
    """An albumentations pipeline producing ``imgsz × imgsz`` images with ``pascal_voc`` boxes and ``labels``.

    With ``mosaic=True`` the call must pass ``mosaic_metadata``: three dicts of ``image``, ``bboxes``, ``labels``.
    """
    if mosaic:
        size_to_square = [
            A.Mosaic(grid_yx=(2, 2), target_size=(imgsz, imgsz), cell_shape=(imgsz, imgsz), fit_mode="contain",
                     fill=PAD_VALUE, p=1.0)
        ]  # fmt: skip
    else:
        size_to_square = [
            A.LongestMaxSize(max_size=imgsz, p=1.0),
            A.PadIfNeeded(imgsz, imgsz, border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE, p=1.0),
        ]
    c = config
    steps = [
        *size_to_square,
        A.Affine(scale=(1 - c.scale, 1 + c.scale), translate_percent=(-c.translate, c.translate),
                 rotate=(-c.degrees, c.degrees), border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE, p=1.0),
        A.HorizontalFlip(p=c.fliplr),
    ]  # fmt: skip
    if c.hsv_h or c.hsv_s or c.hsv_v:
        steps.append(A.ColorJitter(brightness=c.hsv_v, contrast=0, saturation=c.hsv_s, hue=c.hsv_h, p=1.0))
    if c.blur:
        steps.append(A.OneOf([A.Blur(blur_limit=(3, 5)), A.MedianBlur(blur_limit=(3, 5))], p=c.blur))
    boxes = A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=c.min_visibility,
                         min_width=2, min_height=2, clip=True)  # fmt: skip
    return A.Compose(steps, bbox_params=boxes)
