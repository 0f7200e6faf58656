"""The Ray Data engine on a local Ray with 2 CPUs: the same dataset as the local engine; too many actors is an error."""

import json

import pytest

from ovdet.engine.label import label
from ovdet.errors import ConfigError
from tests.engine.test_label import _give_back_global_state, same_records, write_scenes  # noqa: F401 (a fixture)
from tests.engine.test_label import CLASSES, NEGATIVE

ray = pytest.importorskip("ray", reason='the Ray engine needs the ray extra: pip install "ovdet[ray]"')


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _lines(out):
    """The journal's records ordered by key (the Ray engine journals them as actors finish, not in source order)."""
    return sorted((out / "records.jsonl").read_text().splitlines(), key=lambda line: json.loads(line)["key"])


def test_ray_engine_labels_what_the_local_engine_labels(local_ray, tmp_path):
    from tests.media import write_video

    write_scenes(tmp_path / "images", 6)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    write_video(tmp_path / "images" / "clip.avi", frames=6)
    local = label(tmp_path / "images", CLASSES, negative=NEGATIVE, out=tmp_path / "local", vid_stride=2, samples=0,
                  batch=4)  # fmt: skip
    distributed = label(tmp_path / "images", CLASSES, negative=NEGATIVE, out=tmp_path / "ray", vid_stride=2,
                        samples=0, batch=4, engine="ray", actors=2)  # fmt: skip
    assert (distributed.images, distributed.labelled, distributed.boxes) == (local.images, 9, local.boxes)
    assert distributed.skipped == local.skipped and len(local.skipped) == 1
    same_records(_lines(tmp_path / "ray"), _lines(tmp_path / "local"))  # the same records, equal after sorting
    for name in ("data.yaml", "coco.yaml"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    frames = sorted(p.name for p in (tmp_path / "ray" / "images").rglob("clip_*.png"))
    assert frames == ["clip_000000.png", "clip_000002.png", "clip_000004.png"]


def test_decode_streams_a_video_frame_by_frame(tmp_path, monkeypatch):
    """A decode task yields each frame as it is read: it never holds a whole video (no Ray needed to show it)."""
    from types import SimpleNamespace

    import numpy as np

    import ovdet.sources
    from ovdet.engine.label_ray import _decode

    read = []

    class Frames:  # a video of 1000 frames that counts the frames decoded so far
        def __init__(self, path, vid_stride):
            self.stride = vid_stride

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __iter__(self):
            for index in range(0, 1000, self.stride):
                read.append(index)
                yield SimpleNamespace(index=index, image=np.zeros((4, 4, 3), np.uint8))

    monkeypatch.setattr(ovdet.sources, "VideoFileSource", Frames)
    (tmp_path / "clip.avi").write_bytes(b"")
    spec = {"item": None, "video": [str(tmp_path / "clip.avi"), "clip"], "done": [0, 4]}
    rows = iter(_decode({"spec": json.dumps(spec)}, vid_stride=2))
    first = next(rows)
    assert json.loads(first["item"])[1] == "clip_000002.png" and read == [0, 2]  # frame 0 was labelled already
    assert [json.loads(r["item"])[3] for r in rows] == list(range(6, 1000, 2))  # and 4 too


def test_too_many_cpu_actors_is_an_error_not_a_hang(local_ray, tmp_path):
    write_scenes(tmp_path / "images", 1)
    with pytest.raises(ConfigError, match="3 detector actors need 3 CPUs, but the Ray cluster has 2; pass --actors 2"):
        label(tmp_path / "images", "star", out=tmp_path / "ds", engine="ray", actors=3)
    assert not (tmp_path / "ds").exists()  # checked before anything is written: the next try is not refused
