import numpy as np

from ovdet.data.synthetic import DEFAULT_WORLD, SceneConfig, make_caption, mentions_pair, object_caption, render_scene
from ovdet.data.synthetic.captions import plural

W = DEFAULT_WORLD


def test_spans_point_at_each_objects_phrase():
    checked = 0
    for seed in range(40):
        scene = render_scene(W, seed, pairs=W.pairs, config=SceneConfig(long_side=(96, 128)))
        for o in scene.objects:
            phrase = scene.caption[o.span[0]:o.span[1]]
            assert any(c in phrase.split() for c in W.color_synonyms[o.color]), (phrase, o)
            assert any(s in phrase for s in W.shape_synonyms[o.shape]), (phrase, o)
            assert mentions_pair(phrase, W, o.pair)
            checked += 1
    assert checked > 50


def test_caption_counts_groups_and_synonyms():
    objects = [("red", "circle", None), ("red", "circle", None), ("blue", "square", "small")]
    rng = np.random.default_rng(0)
    captions = [make_caption(W, objects, rng, background="stripes") for _ in range(60)]
    for caption, spans in captions:
        assert spans[0] == spans[1] and caption.count("two ") == 1
        assert caption[spans[0][0]:spans[0][1]] in ("red circles", "red discs")
        assert caption[spans[2][0]:spans[2][1]] in ("blue square", "blue box", "small blue square", "small blue box")
    texts = " ".join(c for c, _ in captions)
    assert "discs" in texts and "box" in texts and "small" in texts and "striped background" in texts


def test_articles_plurals_and_mentions():
    caption, spans = make_caption(W, [("orange", "cross", None)], np.random.default_rng(1))
    assert "an orange" in caption
    assert plural("box") == "boxes" and plural("rhombus") == "rhombuses" and plural("plus sign") == "plus signs"
    assert mentions_pair("two red stars on a plain background", W, ("red", "star"))
    assert mentions_pair("a violet rhombus", W, ("purple", "diamond"))
    assert not mentions_pair("a red circle and a blue star", W, ("red", "star"))
    assert not mentions_pair("a bored star", W, ("red", "star"))


def test_object_caption_names_the_pair():
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert mentions_pair(object_caption(W, ("white", "square"), rng, background="noise"), W, ("white", "square"))
