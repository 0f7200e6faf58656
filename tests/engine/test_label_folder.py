"""The label run's folder: what a killed run leaves is swept, and only that; the settings a resume is compared by."""

import copy
import json
import os

import cv2
import numpy as np
import pytest
import torch

import ovdet
from ovdet.engine.label_folder import FORMAT_VERSION, compare_settings, fixed_rows, model_digest, remove_stale_temps
from ovdet.errors import ConfigError
from ovdet.io.dataset_folder import store_image, write_dataset
from ovdet.io.label_formats import LabelRecord
from ovdet.text.tuned import TunedEmbeddings
from ovdet.text.vocabulary import Vocabulary
from tests.engine.test_label import _give_back_global_state  # noqa: F401 (autouse: this module loads a model)


def _rec(source, name, stored=False, frame=None):
    return LabelRecord.from_detections(source, name, source, frame, stored, (32, 48),
                                       np.array([[2, 2, 20, 20]], np.float32), np.array([0.5]), np.array([0]))


def test_the_temporaries_of_every_writer_are_swept_and_a_users_files_are_not(tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "ds"
    src.mkdir()
    records = [_rec(str(src / f"{i}.jpg"), f"{i}.jpg") for i in range(4)]
    for r in records:
        cv2.imwrite(r.source, np.zeros((32, 48, 3), np.uint8))
    temps = []
    replace = os.replace

    def spy(tmp, path):  # every temporary a writer renames into place: what a SIGKILL just before would leave
        if os.path.basename(tmp).startswith("."):  # not a stored frame moved between splits
            temps.append(os.fspath(tmp))
        replace(tmp, path)

    monkeypatch.setattr(os, "replace", spy)
    store_image(out, "train", "clip_000000.png", np.zeros((8, 8, 3), np.uint8))
    write_dataset(out, [*records, _rec("/v/clip.mp4", "clip_000000.png", True, 0)], ["thing"], [["thing"]],
                  split=0.5, seed=0, formats=("coco", "yolo", "labelstudio"))  # fmt: skip
    write_dataset(out / "copied", records, ["thing"], [["thing"]], split=0.5, seed=0, copy_images=True)
    monkeypatch.undo()
    written = {os.path.dirname(t) for t in temps}
    assert {str(out / "labels" / "train"), str(out / "images" / "val"), str(out / "annotations"), str(out),
            str(out / "labelstudio")} <= written  # fmt: skip (label files, image links, indexes)
    for t in temps:  # left by a kill: each one is found again
        open(t, "w").close()
    mine = [out / ".notes.tmp", out / "labels" / "train" / ".draft.txt.tmp", out / "images" / "val" / "x.tmp",
            out / "mine" / ".a.ovdet.tmp"]  # fmt: skip (the user's, in the run's folders; a folder of theirs)
    for p in mine:
        p.parent.mkdir(exist_ok=True)
        p.write_text("the user's")
    remove_stale_temps(out)
    remove_stale_temps(out / "copied")
    assert not [t for t in temps if os.path.lexists(t)]
    assert all(p.read_text() == "the user's" for p in mine)


@pytest.fixture(scope="module")
def model():
    return ovdet.load()


def test_the_digest_ignores_the_last_bits_of_embeddings_not_what_decides_labels(model):
    names = ["red circle", "star"]
    digest = model_digest(model.set_classes(names))
    vocab = model.vocabulary
    model.set_vocabulary(Vocabulary(vocab.names, vocab.prompts, np.nextafter(vocab.embeddings, np.inf)))  # 1 ulp
    assert model_digest(model) == digest and fixed_rows(model) == {}  # text rows: by their prompts and encoder
    assert model_digest(model.set_classes(["red circle", "square"])) != digest
    assert model_digest(model.set_classes({"red circle": ["red circle"], "star": ["star", "red star"]})) != digest
    other = copy.deepcopy(model.set_classes(names))
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert model_digest(model) == digest != model_digest(other)


def test_a_tuned_class_is_compared_within_a_tolerance(model, tmp_path):
    tuned = copy.deepcopy(model)
    rng = np.random.default_rng(0)
    tuned.tuned = TunedEmbeddings(("star",), rng.normal(size=(1, tuned.embed_dim)))
    tuned.set_classes(["red circle", "star"])
    settings = {"format_version": FORMAT_VERSION, "model_digest": model_digest(tuned), "fixed_rows": fixed_rows(tuned)}
    assert list(settings["fixed_rows"]) == ["star"]
    (tmp_path / "label.json").write_text(json.dumps(settings))
    row = tuned.tuned.embeddings

    def resumed(moved):
        tuned.tuned = TunedEmbeddings(("star",), row + moved)
        tuned.set_classes(["red circle", "star"])
        return {**settings, "model_digest": model_digest(tuned), "fixed_rows": fixed_rows(tuned)}

    compare_settings(tmp_path, resumed(np.spacing(row)))  # tuned again on another machine: a few ulps apart
    with pytest.raises(ConfigError, match=r"the embeddings of star \(given by example or tuned"):
        compare_settings(tmp_path, resumed(1e-2 * rng.normal(size=row.shape)))
