"""What ovdet label reads: recursive folders, any-case suffixes, globs, videos; unique names; outputs left out."""

import cv2
import numpy as np
import pytest

from ovdet.engine.label_items import find_sources, iter_images
from ovdet.errors import SourceError
from tests.media import write_video


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    image = np.full((24, 32, 3), 90, np.uint8)
    for rel in ("a/x.jpg", "b/x.jpg", "b/deep/y.PNG", "CAPS.JPG", "gray.ppm", "notes.txt", "ds/images/train/old.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".txt"):
            (root / rel).write_text("not an image")
        else:
            cv2.imwrite(str(root / rel), image)
    (root / "a_x.jpg").write_bytes((root / "a/x.jpg").read_bytes())  # a name that "a/x.jpg" could flatten to
    (root / "clips").mkdir()
    write_video(root / "clips" / "clip.avi", frames=10)
    return root


def test_every_input_is_found_once_and_named_uniquely(tree):
    found = find_sources([tree, tree / "a" / "x.jpg"], exclude=tree / "ds")
    names = {i.path.removeprefix(str(tree) + "/"): i.name for i in found.images}
    assert names == {"CAPS.JPG": "CAPS.JPG", "a/x.jpg": "a__x.jpg", "a_x.jpg": "a_x.jpg",
                     "b/deep/y.PNG": "b__deep__y.PNG", "b/x.jpg": "b__x.jpg", "gray.ppm": "gray.png"}  # fmt: skip
    assert [i.store for i in found.images if i.name == "gray.png"] == [True]  # .ppm: pixels kept as PNG
    assert [p for _, p in found.videos] == ["clips__clip"]
    # a name's stem taken already (case-insensitively, as YOLO label files are named) gets a suffix
    clash = find_sources([tree / "a", tree / "b" / "x.jpg"], known={"/elsewhere/z.jpg": "X.jpg"})
    assert sorted(i.name for i in clash.images) == ["x_1.jpg", "x_2.jpg"]
    # an earlier run's names are kept
    again = find_sources(tree / "a", known={str((tree / "a/x.jpg").resolve()): "kept.jpg"})
    assert [i.name for i in again.images] == ["kept.jpg"]


def test_globs_and_video_frames(tree):
    found = find_sources(str(tree / "b" / "**" / "*.PNG"))
    assert [i.name for i in found.images] == ["deep__y.PNG"]
    videos = find_sources(tree / "clips")
    items = [(item.name, image.shape) for item, image, _ in iter_images(videos, vid_stride=4)]
    assert items == [(f"clip_{i:06d}.png", (96, 128, 3)) for i in (0, 4, 8)]
    done = {f"{videos.videos[0][0]}#frame=4"}
    assert [item.frame for item, _, _ in iter_images(videos, done=done, vid_stride=4)] == [0, 8]


def test_nothing_found_is_one_clear_error(tree, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.md").write_text("x")
    with pytest.raises(SourceError, match=r"no images or videos found: searched folder .*empty \(recursively\) for "
                                          r"\.jpg, \.jpeg.*\(in any case\)"):  # fmt: skip
        find_sources(tmp_path / "empty")
    with pytest.raises(SourceError, match="leaving out the output folder"):
        find_sources(tree / "ds", exclude=tree / "ds")
    with pytest.raises(SourceError, match="not found"):
        find_sources(tmp_path / "missing")
    with pytest.raises(SourceError, match="URL"):
        find_sources("https://example.com/a.jpg")


def test_no_image_takes_a_name_a_video_frame_has(tmp_path):
    # clip_000000.jpg beside clip.avi: both would write labels/<split>/clip_000000.txt
    image = np.full((24, 32, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "clip_000000.jpg"), image)
    write_video(tmp_path / "clip.avi", frames=2)
    found = find_sources(tmp_path)  # the video comes first ("clip.avi" < "clip_000000.jpg")
    assert [p for _, p in found.videos] == ["clip"] and [i.name for i in found.images] == ["clip_000000_1.jpg"]
    # the other way round: an image named first keeps its name, the video takes another prefix
    (tmp_path / "a").mkdir()
    write_video(tmp_path / "a" / "clip.avi", frames=2)
    both = find_sources([tmp_path / "clip_000000.jpg", tmp_path / "a"])
    assert [i.name for i in both.images] == ["clip_000000.jpg"] and [p for _, p in both.videos] == ["clip_1"]
    # an earlier run's frames keep their video's prefix away from new images
    video = str((tmp_path / "clip.avi").resolve())
    resumed = find_sources(tmp_path / "clip_000000.jpg", known={f"{video}#frame=4": "clip_000004.png"})
    assert [i.name for i in resumed.images] == ["clip_000000_1.jpg"]


def test_linked_folders_glob_like_names_and_empty_sources(tree, tmp_path):
    image = np.full((24, 32, 3), 90, np.uint8)
    (tmp_path / "photos [1]").mkdir()
    cv2.imwrite(str(tmp_path / "photos [1]" / "p.jpg"), image)
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "linked").symlink_to(tree / "b", target_is_directory=True)  # its images are labelled too
    (tmp_path / "set" / "loop").symlink_to(tmp_path / "set", target_is_directory=True)  # searched once, no loop
    (tmp_path / "set" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # a broken link: skipped, named as it is
    found = find_sources([tmp_path / "set", tmp_path / "photos [1]" / "p.jpg"])  # that file, not a pattern
    assert sorted(i.name for i in found.images) == ["gone.jpg", "linked__deep__y.PNG", "linked__x.jpg", "p.jpg"]
    errors = [str(e) for _, _, e in iter_images(found) if e is not None]
    assert errors == [f"cannot read image file {tmp_path / 'set' / 'gone.jpg'}: it links to {tmp_path / 'nowhere.jpg'}, "
                      "which does not exist"]  # fmt: skip
    # one source among several finding nothing (a wrong suffix, a typo) is an error naming it, not a smaller run
    with pytest.raises(SourceError, match=r"no images or videos found: searched pattern '.*\*\.png'.*leave out"):
        find_sources([tmp_path / "set", str(tree / "a" / "*.png")])
