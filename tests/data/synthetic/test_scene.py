import numpy as np
import pytest

from ovdet.data.synthetic import DEFAULT_WORLD, SceneConfig, ShapeSpec, compose, render_scene
from ovdet.errors import ConfigError

SMALL = SceneConfig(long_side=(96, 160))
CLEAN = SceneConfig(long_side=(96, 160), blur=0.0, noise=0.0, jpeg_quality=None)
RED, GREEN, WHITE = (40, 40, 215), (60, 165, 40), (245, 245, 245)


def flat(height=100, width=120, value=(128, 128, 128)):
    return np.full((height, width, 3), value, np.uint8)


def test_same_seed_same_scene():
    a, b = render_scene(DEFAULT_WORLD, 7, config=SMALL), render_scene(DEFAULT_WORLD, 7, config=SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.objects == b.objects and a.caption == b.caption and a.jpeg == b.jpeg
    c = render_scene(DEFAULT_WORLD, 8, config=SMALL)
    assert c.caption != a.caption or not np.array_equal(c.image, a.image)


def test_boxes_are_inside_and_objects_visible():
    sizes = set()
    for seed in range(25):
        scene = render_scene(DEFAULT_WORLD, seed, config=SMALL)
        h, w = scene.image.shape[:2]
        sizes.add((h, w))
        assert 96 <= max(h, w) <= 160 and scene.image.dtype == np.uint8
        for o in scene.objects:
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert o.visible >= SMALL.min_visible and 0 < o.area <= (x2 - x1) * (y2 - y1)
    assert len(sizes) > 10  # varied image sizes


def test_box_is_tight_on_the_visible_pixels():
    spec = ShapeSpec("star", (60.3, 47.8), 25.0, angle=17.0, param=0.45)
    image, painted = compose(flat(), [(spec, RED)])
    (p,) = painted
    ys, xs = np.nonzero(np.abs(image.astype(int) - 128).sum(axis=2) > 0)  # every touched pixel, faint AA edges too
    touched = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    # the box holds pixels >= 50 % covered: inside the touched region, at most one anti-aliased pixel short of it
    assert all(0 <= a - b <= 1 for a, b in zip(p.box[:2], touched[:2]))
    assert all(0 <= b - a <= 1 for a, b in zip(p.box[2:], touched[2:]))
    assert p.visible == 1.0 and p.index == 0


def test_occluded_object_is_boxed_by_its_visible_part():
    under = ShapeSpec("square", (40.0, 50.0), 28.0)  # axis-aligned square, x 20..60
    over = ShapeSpec("square", (75.0, 50.0), 28.0)  # covers x >= 55
    image, painted = compose(flat(), [(under, RED), (over, GREEN)])
    assert [p.index for p in painted] == [0, 1]
    (px1, _, px2, _) = painted[0].box
    assert abs(px1 - 20) <= 1 and abs(px2 - 55) <= 1  # cut off where the green square starts
    assert 0.8 < painted[0].visible < 0.9
    red = np.all(np.abs(image.astype(int) - RED) < 10, axis=2)
    ys, xs = np.nonzero(red)
    assert xs.max() + 1 <= px2 and xs.min() >= px1


def test_an_object_that_would_hide_another_is_not_painted():
    under = ShapeSpec("circle", (60.0, 50.0), 15.0)
    cover = ShapeSpec("square", (60.0, 50.0), 30.0)
    image, painted = compose(flat(), [(under, RED), (cover, GREEN)], min_visible=0.4)
    assert [p.index for p in painted] == [0]
    assert not np.any(np.all(np.abs(image.astype(int) - GREEN) < 10, axis=2))  # no unlabelled green pixels


def test_objects_need_contrast_and_must_lie_mostly_inside():
    _, painted = compose(flat(value=WHITE), [(ShapeSpec("square", (60.0, 50.0), 20.0), (250, 250, 250))])
    assert painted == []  # a white square on white would be invisible
    _, painted = compose(flat(), [(ShapeSpec("circle", (-5.0, 50.0), 20.0), RED)])
    assert painted == []  # three quarters outside the image


def test_training_scenes_never_draw_held_out_pairs():
    for seed in range(40):
        for o in render_scene(DEFAULT_WORLD, seed, config=SMALL).objects:
            assert not DEFAULT_WORLD.is_held_out(o.pair)
    drawn = {o.pair for seed in range(40)
             for o in render_scene(DEFAULT_WORLD, seed, pairs=DEFAULT_WORLD.held_out_pairs, config=SMALL).objects}
    assert drawn and drawn <= set(DEFAULT_WORLD.held_out_pairs)


def test_explicit_objects():
    objects = [("red", "circle"), ("purple", "star"), ("blue", "ring")]
    scene = render_scene(DEFAULT_WORLD, 0, objects=objects, config=SceneConfig(long_side=(256, 256), tries=50))
    assert [o.pair for o in scene.objects] == objects


def test_bad_pairs_and_config():
    with pytest.raises(ConfigError, match="not a pair of this world"):
        render_scene(DEFAULT_WORLD, 0, objects=[("pink", "circle")])
    with pytest.raises(ConfigError, match="long_side"):
        SceneConfig(long_side=(300, 200))
    with pytest.raises(ConfigError, match="background"):
        SceneConfig(backgrounds=("marble",))


def test_tungsten_light_is_dim_and_warm_and_neutral_scenes_are_unchanged():
    from ovdet.data.synthetic import apply_lighting

    neutral = render_scene(DEFAULT_WORLD, 3, config=CLEAN)
    same = render_scene(DEFAULT_WORLD, 3, config=SceneConfig(long_side=(96, 160), blur=0.0, noise=0.0,
                                                             jpeg_quality=None, lighting="neutral"))  # fmt: skip
    np.testing.assert_array_equal(same.image, neutral.image)  # the default world is untouched
    warm = render_scene(DEFAULT_WORLD, 3, config=SceneConfig(long_side=(96, 160), blur=0.0, noise=0.0,
                                                             jpeg_quality=None, lighting="tungsten"))  # fmt: skip
    assert warm.objects == neutral.objects  # the same scene, in another light
    b, g, r = neutral.image.reshape(-1, 3).astype(float).mean(0)
    wb, wg, wr = warm.image.reshape(-1, 3).astype(float).mean(0)
    # channel gains (120, 187, 255) / 255 times 0.95-1.05 each: blue/red at most 0.52, green/red at most 0.81 of
    # what they were; red at most 0.9 x 1.05 of its level (a lamp level of 0.6-0.9 times a falloff <= 1)
    assert wr < 0.95 * r and wb / wr < 0.55 * b / r and wg / wr < 0.85 * g / r
    white = apply_lighting(np.full((40, 40, 3), 255, np.uint8), "tungsten", np.random.default_rng(0))
    assert (white[..., 2] > white[..., 1]).all() and (white[..., 1] > white[..., 0]).all()  # white turns orange
    with pytest.raises(ConfigError, match="lighting"):
        SceneConfig(lighting="sodium")
