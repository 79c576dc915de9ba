import numpy as np
import pytest
import torch
from PIL import Image

from cnn_helpers.core import data


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
    with pytest.raises(ValueError, match=r"4 dimensions \(N, C, H, W\)"):
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


# --- issue 8: orientation, float files, NaN, values outside [0, 1], memory -----------------------------------

def test_exif_orientation_turns_a_phone_photo_upright(tmp_path):
    pixels = np.zeros((2, 4, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif)
    image = data.load_image(tmp_path / "phone.png")
    assert image.shape == (1, 3, 4, 2)  # portrait, as the phone showed it
    assert image[0, :, 0, 1].tolist() == [1.0, 0.0, 0.0] and image[0, 0].sum().item() == 1.0


@pytest.mark.parametrize("values, expected", [
    ([0.0, 0.25, 1.0], [0.0, 0.25, 1.0]),  # a float file in [0, 1] stays as it is
    ([0.0, 51.0, 255.0], [0.0, 0.2, 1.0]),  # 8-bit range
    ([0.0, 13107.0, 65535.0], [0.0, 0.2, 1.0]),  # 16-bit range
])
def test_float_tiff_keeps_its_range(tmp_path, values, expected):
    Image.fromarray(np.array([values], dtype=np.float32), mode="F").save(tmp_path / "f.tiff")
    image = data.load_image(tmp_path / "f.tiff")
    assert image[0, 0, 0].tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("values, match", [([0.0, float("nan")], "NaN"), ([-1.0, 0.5], "span"), ([0.0, 1e6], "span")])
def test_float_tiff_with_unreadable_values_is_refused(tmp_path, values, match):
    Image.fromarray(np.array([values], dtype=np.float32), mode="F").save(tmp_path / "f.tiff")
    with pytest.raises(ValueError, match=match):
        data.load_image(tmp_path / "f.tiff")


def test_nan_in_an_array_is_refused_not_passed_on():
    with pytest.raises(ValueError, match="NaN"):
        data.image_from_array(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        data.image_from_array(np.zeros((0, 3), dtype=np.float32))


@pytest.mark.parametrize("function", [lambda x: data.resize(x, 4), lambda x: data.resize_and_crop(x, 4),
                                      lambda x: data.center_crop(x, 4), data.to_numpy])
@pytest.mark.parametrize("bad", [lambda x: x * 255, lambda x: (x - 0.45) / 0.225, lambda x: x.masked_fill(x > 0.9, float("nan"))],
                         ids=["0-255 floats", "normalized", "nan"])
def test_values_outside_unit_range_are_refused_not_clipped(function, bad):
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        function(bad(x))


def test_uint8_tensors_are_converted():
    x = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.center_crop(x, 4), (x.float() / 255)[..., 2:6, 2:6])
    assert data.to_numpy(x).max() <= 1.0 and data.to_numpy(x)[0, 0, 0] == pytest.approx(x[0, 0, 0, 0].item() / 255)


def test_resize_and_crop_of_an_ordinary_photo_is_resize_then_crop():
    x = torch.rand(1, 3, 30, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(data.resize_and_crop(x, 16), data.center_crop(data.resize(x, 16), 16))


def test_resize_and_crop_of_an_elongated_image_crops_first_and_shows_the_same_centre():
    ramp = torch.linspace(0, 1, 500).expand(1, 3, 20, 500).contiguous()  # a smooth 20 x 500 strip
    full = data.center_crop(data.resize(ramp, 16), 16)
    assert torch.allclose(data.resize_and_crop(ramp, 16), full, atol=0.01)


def test_a_long_panorama_is_not_resized_whole(tmp_path):
    from sweep import memory_limit

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1, 10000, 3), dtype=np.uint8)).save(tmp_path / "pano.png")
    with memory_limit(1 << 30):  # resizing the whole strip to 224 x 2,240,000 would take 6 GB
        image = data.load_image(tmp_path / "pano.png", size=224)
    assert image.shape == (1, 3, 224, 224)


def test_absurd_sizes_are_refused_with_the_estimate():
    with pytest.raises(ValueError, match=r"size=100000\) would allocate about 112 GiB"):
        data.load_image("cat", size=100_000)
    with pytest.raises(ValueError, match="GiB"):
        data.resize(torch.rand(1, 3, 4, 4), 100_000)


def test_load_mnist_is_parsed_once_and_hands_out_independent_copies():
    images, labels = data.load_mnist(size=28, standardize=False)
    first_image, first_label = images[0].clone(), labels[0].item()
    images[0], labels[0] = 0.5, (first_label + 1) % 10  # a caller changing its copy
    again, labels_again = data.load_mnist(size=28, standardize=False)
    assert torch.equal(again[0], first_image) and labels_again[0].item() == first_label
    assert again.max() == 1.0 and again.min() == 0.0
    with pytest.raises(ValueError, match=r"size must be an int in \[1, 28\]"):
        data.load_mnist(size=56)
    with pytest.raises(TypeError, match="standardize"):
        data.load_mnist(standardize=1)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_huge_photo_is_shrunk_while_still_8_bit(tmp_path, monkeypatch, suffix):
    ramp = np.linspace(0, 255, 600)
    pixels = np.stack([ramp[None, :].repeat(400, 0), ramp[:400, None].repeat(600, 1), np.full((400, 600), 128.0)], -1)
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"big{suffix}", quality=95)
    exact = data.load_image(tmp_path / f"big{suffix}", size=50)  # 400 x 600 is small: no shrinking
    seen = []
    monkeypatch.setattr(data, "REDUCE_ABOVE", 1000)  # pretend 400 x 600 were 100 megapixels
    monkeypatch.setattr(data, "_pil_to_tensor", lambda pil, convert=data._pil_to_tensor: seen.append(pil.size) or convert(pil))
    shrunk = data.load_image(tmp_path / f"big{suffix}", size=50)
    assert seen and min(seen[0]) < 400 and min(seen[0]) >= 100  # 4x smaller at most: twice `size` is kept
    assert shrunk.shape == exact.shape == (1, 3, 50, 50) and torch.allclose(shrunk, exact, atol=0.02)


# --- the stamps: notebook 07's colour few-shot task ---------------------------------------------------------------

def test_load_stamps_matches_the_manifest():
    import csv

    images, labels, categories, source = data.load_stamps(size=32)
    assert images.shape == (159, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1 and images.mean() > 0.5  # cut out on white
    rows = list(csv.DictReader(open(data.data_dir() / "stamps" / "MANIFEST.csv")))
    assert categories == ["birds", "flowers", "fruit", "mammals", "vegetables"]
    assert torch.bincount(labels).tolist() == [sum(r["category"] == c for r in rows) for c in categories] == [34, 24, 22, 61, 18]
    assert [categories[i] for i in labels] == [r["category"] for r in rows]
    assert source.tolist() == [max(map(int, r["source_size"].split("x"))) for r in rows]
    assert source[labels == 3].float().median() > 2 * source[labels == 2].float().median()  # the confound the README names


def test_load_stamps_effective_resolution_removes_detail_and_copies_are_independent():
    sharp, *_ = data.load_stamps(size=64)
    blurred, *_ = data.load_stamps(size=64, effective=16)
    edges = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert edges(blurred) < 0.7 * edges(sharp)
    assert torch.equal(data.load_stamps(size=64, effective=64)[0], sharp)  # same side: unchanged
    sharp[0] = 0.0
    assert data.load_stamps(size=64)[0][0].mean() > 0.5
    with pytest.raises(ValueError, match="effective"):
        data.load_stamps(effective=0)
    with pytest.raises(TypeError, match="size"):
        data.load_stamps(size=12.5)
