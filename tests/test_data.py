import numpy as np
import pytest
import torch
from PIL import Image

from cnn_helpers import data


@pytest.mark.parametrize("name", sorted(data.IMAGES))
def test_every_bundled_image_loads_as_rgb_in_unit_range(name):
    image = data.load_image(name)
    assert image.ndim == 4 and image.shape[:2] == (1, 3) and min(image.shape[-2:]) >= 64
    assert image.dtype == torch.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert image.std() > 0.02  # a real picture, not a blank


def test_size_gives_a_centre_square():
    image = data.load_image("dog", size=128)
    assert image.shape == (1, 3, 128, 128)


def test_grayscale_file_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.array([[0, 128], [255, 64]], dtype=np.uint8), mode="L").save(tmp_path / "g.png")
    image = data.load_image(tmp_path / "g.png")
    assert image.shape == (1, 3, 2, 2)
    assert torch.equal(image[0, 0], image[0, 2])
    assert image[0, 0, 1, 0].item() == pytest.approx(1.0) and image[0, 0, 0, 1].item() == pytest.approx(128 / 255)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent -> white
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    image = data.load_image(str(tmp_path / "a.png"))
    assert image[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert image[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_palette_image(tmp_path):
    pil = Image.new("P", (3, 1))
    pil.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    pil.putpixel((0, 0), 0)
    pil.putpixel((1, 0), 1)
    pil.save(tmp_path / "p.png")
    image = data.load_image(tmp_path / "p.png")
    assert image[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0] and image[0, :, 0, 1].tolist() == [0.0, 1.0, 0.0]


def test_sixteen_bit_image_is_scaled_by_its_range(tmp_path):
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    image = data.load_image(tmp_path / "deep.png")
    assert image[0, 0, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)


def test_missing_file_names_the_argument_and_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="name_or_path='nope'.*cat"):
        data.load_image("nope")
    with pytest.raises(FileNotFoundError, match="folder"):
        data.load_image(tmp_path)


def test_unreadable_file_gets_a_clear_error(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="could not read"):
        data.load_image(tmp_path / "notes.png")


def test_wrong_type_and_bad_size():
    with pytest.raises(TypeError, match="name_or_path"):
        data.load_image(42)
    with pytest.raises(ValueError, match="size"):
        data.load_image("cat", size=0)


def test_image_from_array_checks_shape_dtype_and_range():
    assert data.image_from_array(np.ones((4, 5), dtype=np.float32)).shape == (1, 3, 4, 5)
    with pytest.raises(ValueError, match="shape"):
        data.image_from_array(np.zeros((4, 5, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.image_from_array(np.full((2, 2), 2.0))
    with pytest.raises(TypeError, match="dtype"):
        data.image_from_array(np.zeros((2, 2), dtype=np.int64))


def test_resize_keeps_aspect_and_crop_takes_the_centre():
    image = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6) / 143
    assert data.resize(image, 8).shape == (2, 3, 8, 12)
    crop = data.center_crop(image, 2)
    assert torch.equal(crop, image[..., 1:3, 2:4])
    with pytest.raises(ValueError, match="larger than the image"):
        data.center_crop(image, 5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.resize(image[0], 8)


def test_to_numpy_for_matplotlib():
    array = data.to_numpy(torch.rand(1, 3, 5, 7))
    assert array.shape == (5, 7, 3)
    with pytest.raises(ValueError, match="one image"):
        data.to_numpy(torch.rand(2, 3, 5, 7))


def test_load_mnist_subset():
    images, labels = data.load_mnist(size=14)
    assert images.shape == (5000, 1, 14, 14) and labels.shape == (5000,)
    assert torch.bincount(labels).tolist() == [500] * 10
    assert abs(images.mean().item()) < 1e-4 and images.std().item() == pytest.approx(1.0, abs=1e-4)


def test_load_mnist_rejects_bad_size():
    with pytest.raises(ValueError, match="size"):
        data.load_mnist(size=-3)
