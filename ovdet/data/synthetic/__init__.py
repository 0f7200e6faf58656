"""A procedural open-vocabulary world: coloured shapes in cluttered scenes, with boxes, captions and held-out pairs.

Categories are colour–shape pairs ("red circle"). A few pairs (``World.held_out_pairs``) never appear in training
images or captions, while their colours and shapes do, elsewhere; a detector trained against a text tower is then
tested on those unseen compositions.

>>> from ovdet.data.synthetic import DEFAULT_WORLD, render_scene, render_crops, write_dataset
>>> scene = render_scene(DEFAULT_WORLD, 0)           # image, objects (boxes, pairs, caption spans), caption
>>> crops = render_crops(DEFAULT_WORLD, 256, seed=0)  # single-object crops + captions, seen pairs only
>>> write_dataset("data/synthetic", train=3000, val=200, test=500, workers=2)  # COCO json + data.yaml

Modules: ``world`` (vocabulary, world.json), ``draw`` (shape masks, backgrounds), ``scene`` (composition, boxes,
degradations), ``captions`` (captions, ``tokens_positive``), ``dataset`` (COCO writer), ``crops`` (CLIP crops).
"""

from .captions import make_caption, mentions_pair, object_caption
from .crops import Crop, crop_boxes, render_crop, render_crops, scene_crops
from .dataset import SPLITS, check_no_held_out, write_dataset
from .draw import BACKGROUND_KINDS, SHAPE_NAMES, ShapeSpec, rasterize, render_background, sample_shape_spec
from .scene import LIGHTING, Painted, Scene, SceneConfig, SceneObject, apply_lighting, compose, render_scene
from .world import DEFAULT_WORLD, World, diagonal_held_out

__all__ = [
    "BACKGROUND_KINDS",
    "Crop",
    "DEFAULT_WORLD",
    "LIGHTING",
    "Painted",
    "SHAPE_NAMES",
    "SPLITS",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "ShapeSpec",
    "World",
    "apply_lighting",
    "check_no_held_out",
    "compose",
    "crop_boxes",
    "diagonal_held_out",
    "make_caption",
    "mentions_pair",
    "object_caption",
    "rasterize",
    "render_background",
    "render_crop",
    "render_crops",
    "render_scene",
    "sample_shape_spec",
    "scene_crops",
    "write_dataset",
]
