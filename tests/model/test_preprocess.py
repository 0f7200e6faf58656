import numpy as np
import pytest
import torch

from ovdet.model.postprocess import unletterbox_boxes
from ovdet.model.preprocess import check_imgsz, letterbox, preprocess


@pytest.mark.parametrize("shape", [(1080, 810), (480, 640), (301, 299), (17, 1000), (640, 640)])
@pytest.mark.parametrize("auto", [True, False])
def test_letterbox_matches_ultralytics(shape, auto):
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    ours, info = letterbox(image, (640, 640), auto=auto, stride=32)
    theirs = LetterBox((640, 640), auto=auto, stride=32)(image=image)
    np.testing.assert_array_equal(ours, theirs)
    assert info.input_shape == ours.shape[:2] and info.orig_shape == shape


def test_preprocess_is_rgb_in_unit_range():
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    batch, (info,) = preprocess([image], (64, 64))
    assert batch.shape == (1, 3, 64, 64) and batch.dtype == torch.float32
    assert batch[0, 2].min() == 1.0 and batch[0, 0].max() == 0.0  # blue lands in the last RGB channel


def test_unletterbox_inverts_letterbox():
    image = np.zeros((300, 500, 3), np.uint8)
    _, info = letterbox(image, (640, 640), auto=True)
    boxes = torch.tensor([[10.0, 20.0, 300.0, 250.0]])
    gx, gy = info.gain
    left, top = info.pad
    in_input = boxes * torch.tensor([gx, gy, gx, gy]) + torch.tensor([left, top, left, top])
    torch.testing.assert_close(unletterbox_boxes(in_input, info), boxes)


def test_imgsz_rounds_up_to_the_stride():
    assert check_imgsz(600) == (608, 608)
    assert check_imgsz((320, 480)) == (320, 480)
    with pytest.raises(ValueError):
        check_imgsz(0)


@pytest.mark.parametrize("imgsz", [320.5, "640", None, (320,), True])
def test_bad_sizes_are_value_errors(imgsz):
    from ovdet.model.preprocess import check_imgsz

    with pytest.raises(ValueError, match="imgsz must be a positive int"):
        check_imgsz(imgsz)
