import numpy as np
import pytest

from ovdet.runtime.letterbox import check_imgsz, letterbox, letterbox_batch
from ovdet.runtime.postprocess import unletterbox_boxes


@pytest.mark.parametrize("shape", [(1080, 810), (480, 640), (301, 299), (17, 1000), (640, 640)])
@pytest.mark.parametrize("auto", [True, False])
def test_letterbox_matches_ultralytics(shape, auto):
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    ours, info = letterbox(image, (640, 640), auto=auto, stride=32)
    theirs = LetterBox((640, 640), auto=auto, stride=32)(image=image)
    np.testing.assert_array_equal(ours, theirs)
    assert info.input_shape == ours.shape[:2] and info.orig_shape == shape


def test_batch_is_rgb_divided_by_255_as_ultralytics():
    import torch

    image = np.random.default_rng(1).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    image[..., 0] = 255  # blue in BGR
    batch, (info,) = letterbox_batch([image], (64, 96))
    assert batch.shape == (1, 3, 64, 96) and batch.dtype == np.float32 and batch.flags.c_contiguous
    assert batch[0, 2].min() == 1.0  # blue lands in the last RGB channel
    # ultralytics' predictor: torch float tensor, BGR→RGB, then im /= 255 (a division: bit-exact here)
    expected = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1).float() / 255
    np.testing.assert_array_equal(batch[0], expected.numpy())


def test_unletterbox_inverts_letterbox():
    image = np.zeros((300, 500, 3), np.uint8)
    _, info = letterbox(image, (640, 640), auto=True)
    boxes = np.array([[10.0, 20.0, 300.0, 250.0], [-5.0, 0.0, 520.0, 310.0]], np.float32)
    gx, gy = info.gain
    left, top = info.pad
    in_input = boxes * np.array([gx, gy, gx, gy], np.float32) + np.array([left, top, left, top], np.float32)
    out = unletterbox_boxes(in_input, info)
    np.testing.assert_allclose(out[0], boxes[0], atol=1e-4)
    np.testing.assert_allclose(out[1], [0, 0, 500, 300], atol=1e-4)  # clipped to the image


def test_imgsz_rounds_up_to_the_stride():
    assert check_imgsz(600) == (608, 608)
    assert check_imgsz((320, 480)) == (320, 480)
    with pytest.raises(ValueError):
        check_imgsz(0)


@pytest.mark.parametrize("imgsz", [320.5, "640", None, (320,), True])
def test_bad_sizes_are_value_errors(imgsz):
    from ovdet.runtime.letterbox import check_imgsz

    with pytest.raises(ValueError, match="imgsz must be a positive int"):
        check_imgsz(imgsz)
