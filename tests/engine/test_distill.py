from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ovdet
from ovdet.engine.distill import (
    DEFAULT_WEIGHT, Distiller, build_distiller, distillation_classes, distillation_loss, outside_boxes, read_vocabulary_file,
    split_vocabulary,
)  # fmt: skip
from ovdet.engine.settings import load_settings
from ovdet.engine.tune import check_tuning
from ovdet.errors import ConfigError, VocabularyError
from ovdet.model import build_detector
from ovdet.text.vocabulary import Vocabulary
from tests.fixtures_data import make_coco

TINY_DETECTOR = str(Path(__file__).parent.parent / "tiny-detector.yaml")
DATASET = {"red square": ["red square", "Red Box"], "blue circle": ["blue circle"]}


@pytest.fixture
def starting_model(tiny_encoder):
    torch.manual_seed(0)
    return ovdet.build(TINY_DETECTOR, tiny_encoder).set_classes(["red square", "yellow star", "green ring"])


def test_targets_come_from_the_frozen_starting_model(starting_model):
    start = {k: v.clone() for k, v in starting_model.state_dict().items()}
    names = Vocabulary(("yellow star", "green ring"), (("yellow star",), ("green ring",)), starting_model.vocabulary.embeddings[1:])
    distiller = Distiller(starting_model, names, weight=1.0)
    torch.manual_seed(1)
    images = torch.rand(2, 3, 64, 64)
    text = distiller.extend(starting_model.class_embeddings[:1].expand(2, 1, -1))  # (2, 1 + 2, D)
    assert text.shape == (2, 3, starting_model.embed_dim)
    with torch.no_grad():  # the student trains: its weights move away from the start
        for p in starting_model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    assert all(torch.equal(distiller.teacher.state_dict()[k], v) for k, v in start.items())
    assert not any(p.requires_grad for p in distiller.teacher.parameters())
    # its scores are the starting model's at inference (eval mode; another code path, so equal to float rounding:
    # logits of a few units summed over 32-d embeddings, ~1e-6 relative)
    reference = build_detector(starting_model.config).eval()
    reference.load_state_dict(start)
    with torch.no_grad():
        _, teacher = split_vocabulary(distiller.teacher(images, text), 1)
        _, expected = split_vocabulary(reference(images, text), 1)
    torch.testing.assert_close(teacher.class_logits, expected.class_logits, rtol=1e-4, atol=1e-4)
    # a student that scores as the teacher does has nothing to learn; one that does not is pulled back
    targets = torch.tensor([[0, 0, 8.0, 8.0, 30.0, 30.0]])
    same, logged = distiller.loss(images, text, teacher, targets, 1)
    assert same.item() == 0.0 and logged.item() == 0.0
    moved = teacher._replace(class_logits=teacher.class_logits + 1.0)
    assert distiller.loss(images, text, moved, targets, 1)[0].item() > 0


def test_loss_is_zero_exactly_when_the_scores_agree_and_pulls_towards_the_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 50) * 4
    keep = torch.rand(2, 50) > 0.3
    assert distillation_loss(teacher.clone(), teacher, keep).item() == 0.0
    student = (teacher + torch.randn_like(teacher)).requires_grad_()
    loss = distillation_loss(student, teacher, keep)
    loss.backward()
    assert loss.item() > 0
    p = teacher.sigmoid()
    norm = (p * keep[:, None]).sum()
    expected = (student.detach().sigmoid() - p) * keep[:, None] / norm  # the gradient of a BCE against p
    torch.testing.assert_close(student.grad, expected, rtol=1e-5, atol=1e-7)


def test_labelled_boxes_are_left_to_the_labels():
    anchors = torch.tensor([[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5]])  # a 2x2 grid, stride 8: centres 4, 12
    strides = torch.full((4, 1), 8.0)
    targets = torch.tensor([[1, 0, 0.0, 0.0, 8.0, 16.0]])  # image 1: a box over the left column
    keep = outside_boxes(anchors, strides, targets, 2)
    assert keep.tolist() == [[True] * 4, [False, True, False, True]]
    teacher = torch.zeros(2, 1, 4)
    student = teacher.clone()
    student[1, 0, 0] = 5.0  # a different score only where the label rules
    assert distillation_loss(student, teacher, keep).item() == 0.0


def _with_vocabulary(prompts: dict, projected: list[bool] | None = None) -> SimpleNamespace:
    names = tuple(prompts)
    vocab = Vocabulary(names, tuple(tuple(p) for p in prompts.values()), np.eye(len(names), 8, dtype=np.float32),
                       projected=projected)  # fmt: skip
    return SimpleNamespace(text_encoder=None, vocabulary=vocab)


def test_vocabulary_leaves_out_the_dataset_classes_and_their_prompts():
    model = _with_vocabulary({
        "RED  square": ["red square"], "red box": ["red box"], "yellow star": ["yellow star"],
        "green ring": ["green ring", "blue circle"],  # a prompt that is a dataset class: the name goes too
    })  # fmt: skip
    classes, source = distillation_classes(DATASET, model)
    assert classes == {"yellow star": ["yellow star"]} and source == "the starting model's vocabulary"


def test_classes_given_by_example_are_distilled_unless_already_projected(starting_model):
    """A starting model with a class given by example (ovdet.VisualPrompt) fine-tunes: its row is distilled as the
    model scored it, unless it lies in a YOLOE head's projected space (the batch's text is projected again)."""
    image = np.full((128, 128, 3), 100, np.uint8)
    image[30:90, 30:90] = (0, 0, 230)
    example = ovdet.VisualPrompt(image, [[30, 30, 90, 90]])
    starting_model.set_classes({"widget": [example], "yellow star": ["yellow star"], "red square": ["red square"]},
                               imgsz=128)  # fmt: skip
    distiller = build_distiller(starting_model, DATASET, weight=0.25, explicit=True)
    assert distiller.names == ("widget", "yellow star")  # red square is the dataset's
    torch.testing.assert_close(distiller.embeddings.cpu(), torch.as_tensor(starting_model.vocabulary.embeddings[:2]),
                               rtol=0, atol=0)  # fmt: skip
    projected = _with_vocabulary({"widget": [example], "yellow star": ["yellow star"]}, projected=[True, False])
    assert distillation_classes(DATASET, projected)[0] == {"yellow star": ["yellow star"]}


def test_vocabulary_file_comes_first(tmp_path):
    model = SimpleNamespace(text_encoder=SimpleNamespace(spec="ViT-B-32-quickgelu:openai"), prompts={"cat": ["cat"]})
    listed = tmp_path / "names.yaml"
    listed.write_text("- dog\n- Red Square\n- fire truck\n")
    assert distillation_classes(DATASET, model, listed)[0] == {"dog": ["dog"], "fire truck": ["fire truck"]}
    lines = tmp_path / "names.txt"
    lines.write_text("# a class file\ncar=car|automobile\nred box\n")
    assert distillation_classes(DATASET, model, lines)[0] == {"car": ["car", "automobile"]}
    (tmp_path / "empty.yaml").write_text("{}\n")
    with pytest.raises(ConfigError, match="list of names"):
        read_vocabulary_file(tmp_path / "empty.yaml")


def test_a_dataset_file_as_vocabulary_gives_its_classes_not_its_split_names(tmp_path):
    # a dataset YAML (train/val/texts, no names:) was read as the mapping {"train": ..., "val": ..., "texts": ...}:
    # the names "train", "val" and "texts" were distilled, with "images" and "annotations" as their prompts
    base = make_coco(tmp_path / "base")
    assert read_vocabulary_file(base) == {
        "red square": ["red square", "red box"], "blue circle": ["blue circle", "blue disc"],
        "green square": ["green square"],
    }  # fmt: skip
    model = SimpleNamespace(text_encoder=None, prompts={"cat": ["cat"]})
    assert list(distillation_classes(DATASET, model, base)[0]) == ["green square"]
    (tmp_path / "numbers.yaml").write_text("dog: 1\n")  # was a TypeError traceback
    with pytest.raises(VocabularyError, match="class 'dog' needs at least one prompt"):
        read_vocabulary_file(tmp_path / "numbers.yaml")


def test_a_pretrained_clip_distils_the_shipped_objects365_names():
    model = SimpleNamespace(text_encoder=SimpleNamespace(spec="ViT-B-32-quickgelu:openai"), prompts={"cat": ["cat"]})
    classes, source = distillation_classes({"person": ["person"], "car": ["car", "automobile"]}, model)
    assert source.startswith("Objects365") and len(classes) == 365 - 2  # "Person" and "Car" are the dataset's
    assert "Sneakers" in classes and "Person" not in classes and "Car" not in classes
    tiny = _with_vocabulary({"cat": ["cat"]})
    tiny.text_encoder = SimpleNamespace(spec="ovdet-test-tiny")
    assert distillation_classes(DATASET, tiny)[0] == {"cat": ["cat"]}  # random weights: the model's own names


def test_default_weight_when_fine_tuning_a_saved_model_and_none_from_a_config(tmp_path, tiny_encoder):
    folder = ovdet.build(TINY_DETECTOR, tiny_encoder).set_classes(["a"]).save(tmp_path / "m")
    data = str(tmp_path / "data.yaml")

    def weight(**values):
        return check_tuning(load_settings(None, {"data": data, **values}))

    assert weight(model=folder) == DEFAULT_WEIGHT == 0.25
    assert weight(model=folder, distill=0.2) == 0.2 and weight(model=folder, tune="prompts") == 0
    assert weight(model=TINY_DETECTOR) == 0
    with pytest.raises(ConfigError, match="random weights"):
        weight(model=TINY_DETECTOR, distill=0.5)


def test_a_vocabulary_with_a_class_named_train_is_a_vocabulary(tmp_path):
    listed = tmp_path / "names.yaml"
    listed.write_text("train: [a train, a locomotive]\nbus: [a bus]\n")
    assert read_vocabulary_file(listed) == {"train": ["a train", "a locomotive"], "bus": ["a bus"]}
