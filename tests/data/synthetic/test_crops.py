import numpy as np
import pytest

from ovdet.data.synthetic import DEFAULT_WORLD, SceneConfig, crop_boxes, render_crops, render_scene, scene_crops
from ovdet.data.synthetic.captions import mentions_pair
from ovdet.errors import ConfigError

W = DEFAULT_WORLD


def test_crops_are_seen_pairs_with_matching_captions():
    crops = render_crops(W, 60, seed=1, size=(40, 64))
    assert {c.pair for c in crops} <= set(W.seen_pairs)
    assert len({c.pair for c in crops}) > 20
    for c in crops:
        assert c.image.dtype == np.uint8 and c.image.shape[0] == c.image.shape[1] and 40 <= c.image.shape[0] <= 64
        assert mentions_pair(c.caption, W, c.pair)
        assert not any(mentions_pair(c.caption, W, p) for p in W.held_out_pairs)


def test_crops_are_deterministic_and_chunkable():
    whole = render_crops(W, 4, seed=5)
    parts = render_crops(W, 2, seed=5) + render_crops(W, 2, seed=5, start=2)
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.caption == b.caption


def test_explicit_pairs_and_errors():
    crops = render_crops(W, 5, pairs=[("red", "star")])
    assert all(c.pair == ("red", "star") for c in crops)  # held-out crops only when asked for (zero-shot checks)
    with pytest.raises(ConfigError):
        render_crops(W, 1, pairs=[])
    with pytest.raises(ConfigError):
        render_crops(W, 1, size=(64, 32))


def test_crop_boxes_pads_at_the_border_and_squares():
    image = np.arange(50 * 80 * 3, dtype=np.uint8).reshape(50, 80, 3)
    (inside, edge) = crop_boxes(image, np.array([[10, 10, 30, 20], [70, 0, 80, 40]]), context=0.1)
    assert inside.shape == (24, 24, 3)  # 20 px box side + 2 px context each side
    assert edge.shape[0] == edge.shape[1] and edge.shape[0] >= 48
    (plain,) = crop_boxes(image, np.array([[10, 10, 30, 20]]), context=0.0, square=False)
    np.testing.assert_array_equal(plain, image[10:20, 10:30])


def test_scene_crops_one_per_object():
    scene = render_scene(W, 4, config=SceneConfig(long_side=(128, 160)))
    crops = scene_crops(scene, W, 0)
    assert len(crops) == len(scene.objects) > 0
    assert [c.pair for c in crops] == [o.pair for o in scene.objects]
    assert all(mentions_pair(c.caption, W, c.pair) for c in crops)
