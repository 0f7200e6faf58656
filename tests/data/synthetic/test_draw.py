import math

import numpy as np
import pytest

from ovdet.data.synthetic import (
    BACKGROUND_KINDS,
    SHAPE_NAMES,
    ShapeSpec,
    rasterize,
    render_background,
    sample_shape_spec,
)


def test_circle_area_and_box():
    alpha, (x0, y0), full = rasterize(ShapeSpec("circle", (50.0, 40.0), 20.0), 100, 100)
    # OpenCV fills the boundary pixels too: about half a pixel more radius than the ideal disc
    assert 1.0 < full / (math.pi * 20**2) < 1.08
    ys, xs = np.nonzero(alpha >= 128)
    x1, y1, x2, y2 = x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1
    assert 50 - x1 == x2 - 1 - 50 and 40 - y1 == y2 - 1 - 40  # centred on the pixel (50, 40)
    assert 40 <= x2 - x1 <= 43 and 40 <= y2 - y1 <= 43


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_every_shape_draws_a_plausible_mask(shape):
    rng = np.random.default_rng(0)
    spec = sample_shape_spec(shape, (64.0, 64.0), 30.0, rng)
    alpha, _, full = rasterize(spec, 128, 128)
    assert alpha.dtype == np.uint8 and alpha.max() == 255
    # between a thin cross/ring and a full disc
    assert 0.25 * math.pi * 30**2 < full <= 1.1 * math.pi * 30**2 * max(spec.aspect, 1 / spec.aspect)
    assert np.count_nonzero(alpha >= 128) == full  # fully inside: nothing clipped


def test_ring_has_a_hole_and_round_shapes_stay_round():
    rng = np.random.default_rng(1)
    for _ in range(20):
        for shape in ("circle", "ring", "square"):
            assert 0.9 < sample_shape_spec(shape, (0, 0), 10, rng).aspect < 1.1
    alpha, (x0, y0), _ = rasterize(ShapeSpec("ring", (50.0, 50.0), 20.0, param=0.5), 100, 100)
    assert alpha[50 - y0, 50 - x0] == 0 and alpha[50 - y0, 35 - x0] == 255


def test_clipping_at_the_border_keeps_the_full_area():
    spec = ShapeSpec("square", (0.0, 50.0), 20.0)
    alpha, (x0, y0), full = rasterize(spec, 100, 100)
    inside = np.count_nonzero(alpha >= 128)
    assert x0 == 0 and 0.4 * full < inside < 0.6 * full
    assert rasterize(ShapeSpec("circle", (-100.0, -100.0), 10.0), 50, 50)[0].size == 0


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_backgrounds(kind):
    a = render_background(kind, 37, 53, np.random.default_rng(3))
    b = render_background(kind, 37, 53, np.random.default_rng(3))
    assert a.shape == (37, 53, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_unknown_background_and_shape():
    with pytest.raises(ValueError, match="known"):
        render_background("marble", 10, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="known"):
        sample_shape_spec("blob", (0, 0), 5, np.random.default_rng(0))
