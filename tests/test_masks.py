"""``Masks``: per-box storage that behaves like a dense (N, H, W) bool array."""

from __future__ import annotations

import numpy as np
import pytest

from ovdet import Result
from ovdet.masks import Masks


def dense_masks(rng: np.random.Generator, n: int = 4, shape: tuple[int, int] = (30, 40)) -> np.ndarray:
    masks = np.zeros((n, *shape), bool)
    for m in masks:
        y, x = rng.integers(0, 20), rng.integers(0, 30)
        m[y : y + rng.integers(1, 10), x : x + rng.integers(1, 10)] = rng.random() > 0.1
    return masks


def test_round_trip_indexing_and_areas():
    dense = dense_masks(np.random.default_rng(0))
    masks = Masks.from_dense(dense)
    assert masks.shape == dense.shape and len(masks) == 4 and masks.dtype == bool
    assert np.array_equal(np.asarray(masks), dense) and np.array_equal(masks.to_dense(), dense)
    assert np.array_equal(masks[2], dense[2]) and np.array_equal(masks.areas, dense.sum((1, 2)))
    assert np.array_equal(np.asarray(masks[1:3]), dense[1:3])
    assert np.array_equal(np.asarray(masks[np.array([True, False, True, False])]), dense[[0, 2]])
    assert np.array_equal(np.stack(list(masks)), dense)
    assert masks.nbytes < dense.nbytes


def test_rle_decodes_to_the_mask():
    from pycocotools import mask as mask_utils

    dense = dense_masks(np.random.default_rng(1))
    masks = Masks.from_dense(dense)
    rle = masks.rle(0)
    assert rle["size"] == [30, 40] and isinstance(rle["counts"], str)
    assert np.array_equal(mask_utils.decode({**rle, "counts": rle["counts"].encode()}).astype(bool), dense[0])


def test_result_carries_masks_through_slicing_and_formats():
    pytest.importorskip("supervision")
    dense = dense_masks(np.random.default_rng(2), n=3)
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 3, 3]], np.float32)
    r = Result(boxes, [0.9, 0.5, 0.7], [0, 1, 0], ("a", "b"), (30, 40), masks=dense)
    assert isinstance(r.masks, Masks)
    kept = r[r.scores > 0.6]
    assert np.array_equal(np.asarray(kept.masks), dense[[0, 2]]) and len(r[1:].masks) == 2
    entry = r.to_dict()["detections"][1]
    assert entry["mask"]["size"] == [30, 40]
    detections = r.to_supervision()
    assert detections.mask.shape == (3, 30, 40) and np.array_equal(detections.mask, dense)
    image = np.full((30, 40, 3), 100, np.uint8)
    drawn = r.plot(image)
    painted = dense.any(0)
    assert drawn.shape == image.shape and (drawn[painted] != 100).any() and (image == 100).all()
    with pytest.raises(ValueError, match="one mask per detection"):
        Result(boxes, [0.9, 0.5, 0.7], [0, 1, 0], ("a", "b"), (30, 40), masks=dense[:2])


def test_masks_check_their_crops():
    with pytest.raises(ValueError, match="does not fit"):
        Masks((np.ones((5, 5), bool),), np.array([[38, 0]]), (30, 40))
