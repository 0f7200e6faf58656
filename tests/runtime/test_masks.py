"""Prototype decoding: per-box masks equal ultralytics' ``process_mask_native`` on the whole image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovdet.runtime.letterbox import letterbox
from ovdet.runtime.masks import bilinear_weights, masks_from_prototypes


@pytest.mark.parametrize("size", [8, 13])
@pytest.mark.parametrize("factor", [None, 2.0, 4.0])
def test_bilinear_weights_reproduce_torch_interpolate(size, factor):
    x = torch.randn(1, 1, size, 7, dtype=torch.float64)
    out = 4 * size if factor is None else int(size * factor)
    expected = torch.nn.functional.interpolate(x, size=(out, 7), mode="bilinear") if factor is None else (
        torch.nn.functional.interpolate(x, scale_factor=(factor, 1.0), mode="bilinear"))  # fmt: skip
    weights = torch.from_numpy(bilinear_weights(size, out, factor))
    torch.testing.assert_close(weights @ x[0, 0], expected[0, 0])


@pytest.mark.parametrize("shape", [(1080, 810), (720, 1280), (333, 517), (640, 640), (2160, 3840)])
def test_masks_equal_ultralytics_process_mask_native(shape):
    """Random prototypes and boxes on letterboxed images of several shapes (upsampling by 1, 2 and 4 all occur)."""
    from ultralytics.utils.ops import process_mask_native

    gen = torch.Generator().manual_seed(sum(shape))
    _, info = letterbox(np.zeros((*shape, 3), np.uint8), (320, 320), auto=True)
    mh, mw = info.input_shape[0] // 4, info.input_shape[1] // 4
    protos = torch.randn(32, mh, mw, generator=gen)
    coefficients = torch.randn(12, 32, generator=gen) * 0.3
    h, w = shape
    xy = torch.rand(12, 2, generator=gen) * torch.tensor([w, h]) * 0.8
    wh = torch.rand(12, 2, generator=gen) * torch.tensor([w, h]) * 0.6 + 1
    boxes = torch.cat([xy, (xy + wh).clamp(max=torch.tensor([w, h]))], 1)
    theirs = process_mask_native(protos, coefficients, boxes, shape).bool().numpy()
    ours = masks_from_prototypes(protos.numpy(), coefficients.numpy(), boxes.numpy(), info)
    assert ours.shape == theirs.shape == (12, h, w)
    dense = np.asarray(ours)
    for a, b in zip(dense, theirs):  # thresholding at 0: float rounding may flip the odd pixel at a ~0 logit
        assert (a & b).sum() >= 0.999 * max((a | b).sum(), 1)
    assert ours.nbytes < 0.6 * theirs.nbytes  # only the boxes are stored


def test_empty_and_degenerate_boxes():
    _, info = letterbox(np.zeros((100, 200, 3), np.uint8), (64, 64), auto=True)
    protos = np.random.default_rng(0).normal(size=(32, 16, 16)).astype(np.float32)
    assert len(masks_from_prototypes(protos, np.zeros((0, 32)), np.zeros((0, 4)), info)) == 0
    masks = masks_from_prototypes(protos, np.ones((1, 32)), np.array([[50.0, 20.0, 50.2, 20.0]]), info)
    assert masks.shape == (1, 100, 200) and masks.areas.tolist() == [0]
