import cv2
import numpy as np
import pytest
import torch

from ovdet.data.augment import AugmentConfig, build_transform
from ovdet.data.datasets import load_dataset_config, load_grounding, load_split
from ovdet.data.training import EpochShuffle, TrainingSet, collate
from tests.fixtures_data import add_grounding, make_coco

NO_AUG = AugmentConfig(mosaic=0, scale=0, translate=0, fliplr=0, hsv_h=0, hsv_s=0, hsv_v=0, blur=0)


@pytest.fixture
def parts(tmp_path):
    yaml_path = make_coco(tmp_path)
    add_grounding(tmp_path, yaml_path)
    data = load_dataset_config(yaml_path)
    split = load_split(data, "train")
    prompts = [data.texts.get(n, (n,)) for n in split.names]
    grounding = load_grounding(data.grounding[0])
    texts = list(dict.fromkeys([p for ps in prompts for p in ps] + [p for r in grounding for p in r.phrases]))
    return split, grounding, prompts, {t: i for i, t in enumerate(texts)}


def test_samples_are_deterministic_per_seed_and_epoch(parts):
    split, _, prompts, index = parts
    ds = TrainingSet(split.records, prompts, index, imgsz=96, augment=AugmentConfig(), seed=3)
    a, b = ds[2], ds[2]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])
    assert a["image"].shape == (3, 96, 96) and a["image"].dtype == torch.uint8
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], a["image"])


def test_vocabulary_holds_positives_then_negatives(parts):
    split, _, prompts, index = parts
    ds = TrainingSet(split.records, prompts, index, imgsz=96, augment=NO_AUG, max_vocab=2)
    text_of = {i: t for t, i in index.items()}
    for i, record in enumerate(split.records):
        sample = ds[i]
        vocab = [text_of[int(p)] for p in sample["prompts"]]
        classes = [next(c for c, ps in enumerate(prompts) if t in ps) for t in vocab]
        positives = list(dict.fromkeys(record.labels.tolist()))
        assert len(vocab) == 2 and len(set(classes)) == 2
        if len(positives) <= 2:
            assert classes[: len(positives)] == positives
            # every box is labelled with the vocabulary entry of its own class
            assert [classes[label] for label in sample["labels"].tolist()] == record.labels.tolist()


def test_grounding_vocabulary_is_the_captions_phrases(parts):
    split, grounding, prompts, index = parts
    ds = TrainingSet(grounding, prompts, index, imgsz=96, augment=NO_AUG)
    text_of = {i: t for t, i in index.items()}
    for i, record in enumerate(grounding):
        assert [text_of[int(p)] for p in ds[i]["prompts"]] == list(record.phrases)


def test_collate_pads_vocabularies_with_a_mask(parts):
    split, grounding, prompts, index = parts
    ds = TrainingSet(split.records + grounding, prompts, index, imgsz=64, augment=NO_AUG, max_vocab=3)
    samples = [ds[0], ds[len(split.records)]]
    batch = collate(samples)
    k0, k1 = len(samples[0]["prompts"]), len(samples[1]["prompts"])
    assert batch.prompts.shape == (2, max(k0, k1)) and batch.mask.sum(1).tolist() == [k0, k1]
    padded = ~batch.mask[1]
    assert (batch.prompts[1][padded] == batch.prompts[1][0]).all()  # padding repeats a real entry, never a new class
    assert set(batch.targets[:, 0].tolist()) <= {0.0, 1.0} and batch.targets.shape[1] == 6


def test_unreadable_image_is_replaced_not_fatal(parts, tmp_path):
    split, _, prompts, index = parts
    open(split.records[0].path, "wb").write(b"broken")
    ds = TrainingSet(split.records, prompts, index, imgsz=64, augment=NO_AUG)
    assert ds[0]["image"].shape == (3, 64, 64)


def test_image_cache_serves_repeated_reads_without_changing_samples(parts, monkeypatch):
    split, _, prompts, index = parts
    plain = TrainingSet(split.records, prompts, index, imgsz=96, augment=AugmentConfig(), seed=3)
    cached = TrainingSet(split.records, prompts, index, imgsz=96, augment=AugmentConfig(), seed=3, cache_mb=16)
    reads = []
    real_imread = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda *a: reads.append(a[0]) or real_imread(*a))
    for epoch in (0, 1):  # mosaic reads each image several times; the second epoch comes from memory
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(split.records)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])
            assert torch.equal(a["prompts"], b["prompts"])
    plain_reads = len(reads)
    reads.clear()
    for epoch in (0, 1):
        cached.set_epoch(epoch)
        for i in range(len(split.records)):
            cached[i]
    assert reads == [] and plain_reads > 2 * len(split.records)


def test_image_cache_stays_within_its_memory_bound(parts):
    split, _, prompts, index = parts
    one_image = cv2.imread(split.records[0].path).nbytes
    ds = TrainingSet(split.records, prompts, index, imgsz=64, augment=NO_AUG, cache_mb=2.5 * one_image / 2**20)
    for i in range(len(split.records)):
        ds[i]
        assert ds._cached_bytes <= ds.cache_bytes and len(ds._cache) <= 2
    assert len(ds._cache) == 2 and list(ds._cache) == [len(split.records) - 2, len(split.records) - 1]


def test_persistent_workers_follow_set_epoch(parts):
    split, _, prompts, index = parts
    ds = TrainingSet(split.records, prompts, index, imgsz=64, augment=AugmentConfig(), seed=1, cache_mb=8)
    sampler = EpochShuffle(len(ds), seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=sampler, num_workers=2, persistent_workers=True,
                                         collate_fn=lambda samples: samples[0])  # fmt: skip
    orders = []
    for epoch, mosaic in ((0, True), (1, True), (2, False)):  # the workers outlive each epoch
        ds.set_epoch(epoch, mosaic=mosaic)
        sampler.set_epoch(epoch)
        order = list(sampler)
        for i, sample in zip(order, loader):
            expected = ds[i]  # computed here, in the main process, for the same epoch
            assert torch.equal(sample["image"], expected["image"]) and torch.equal(sample["boxes"], expected["boxes"])
        orders.append(order)
    assert orders[0] != orders[1] and sorted(orders[0]) == list(range(len(ds)))


def test_epoch_shuffle_keeps_the_order_of_a_loader_built_per_epoch():
    sampler = EpochShuffle(23, seed=7)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        per_epoch = torch.utils.data.DataLoader(range(23), shuffle=True, generator=torch.Generator().manual_seed(7 + epoch))
        assert list(sampler) == [int(i) for batch in per_epoch for i in batch]


def test_augmentation_moves_boxes_with_pixels():
    image = np.zeros((80, 120, 3), np.uint8)
    image[20:50, 30:70] = 255
    config = AugmentConfig(mosaic=0, scale=0.3, translate=0.1, fliplr=1.0, hsv_h=0, hsv_s=0, hsv_v=0, blur=0)
    t = build_transform(128, config, mosaic=False)
    for seed in range(5):
        t.set_random_seed(seed)
        out = t(image=image, bboxes=np.array([[30, 20, 70, 50]], np.float32), labels=np.array([0]))
        ys, xs = np.nonzero(out["image"][..., 0] > 127)
        (box,) = out["bboxes"]
        np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=2)


def test_a_sigterm_to_the_whole_process_group_stops_training_in_one_line(tmp_path):
    # what `timeout -s TERM` and a terminal send: the group, data-loading workers included. A worker used to die of
    # it and the main process printed "DataLoader worker (pid N) is killed by signal: Terminated" after its message
    import json
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import TINY_CLIP_CONFIG

    (tmp_path / "text.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    data = make_coco(tmp_path / "data", n_train=8, n_val=1)
    tiny = str(Path(__file__).parent.parent / "tiny-detector.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovdet", "train", "--data", str(data), "--model", tiny, "--text-encoder",
         str(tmp_path / "text.json"), "--epochs", "500", "--imgsz", "64", "--batch", "4", "--workers", "1",
         "--threads", "1", "--out", str(tmp_path / "run"), "--quiet", "--set", "val_split=none"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        lines = [proc.stderr.readline()]
        while lines[-1] and not lines[-1].startswith("ovdet: epoch 1/"):
            lines.append(proc.stderr.readline())  # the workers have been started and have served an epoch
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        if children.exists():  # Linux: the worker left the group (else whether it dies first is a race)
            workers = [int(pid) for pid in children.read_text().split()]
            assert workers and all(os.getpgid(pid) != proc.pid for pid in workers), workers
        os.killpg(proc.pid, signal.SIGTERM)
        stderr = "".join(lines) + proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "ovdet train: terminated (SIGTERM); outputs closed", stderr
    assert "Traceback" not in stderr and "killed by signal" not in stderr, stderr
