"""Decoding untrusted bytes and the eval transform: every supported format works, everything else is BadInput."""

import pytest
import torch
from PIL import Image
from torchvision import transforms

from animals.errors import BadInput
from animals.preprocessing import CROP_SIZE, RESIZE_SIZE, DecodeLimits, decode_image, eval_transform
from tests import corpus

VALID = corpus.valid_images()
INVALID = corpus.invalid_inputs()


@pytest.mark.parametrize("name", sorted(VALID))
def test_supported_formats_decode_to_rgb_and_a_224_tensor(name):
    image = decode_image(VALID[name])
    assert image.mode == "RGB"
    tensor = eval_transform()(image)
    assert tensor.shape == (3, CROP_SIZE, CROP_SIZE)
    assert tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all()


def test_exif_orientation_is_applied():
    assert decode_image(corpus.exif_rotated_jpeg(orientation=6)).size == (240, 320)


def test_animated_gif_gives_its_first_frame():
    first = decode_image(corpus.encode(corpus.gradient(), "PNG"))
    gif = decode_image(VALID["animated_gif"])
    assert abs(gif.getpixel((10, 10))[0] - first.getpixel((10, 10))[0]) < 16


def test_sixteen_bit_png_keeps_its_brightness():
    eight_bit = decode_image(VALID["grayscale_png"])
    sixteen_bit = decode_image(VALID["sixteen_bit_png"])
    assert sixteen_bit.getpixel((200, 100)) == eight_bit.getpixel((200, 100))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("plain_text", "not_image"),
        ("html", "not_image"),
        ("random_bytes", "not_image"),
        ("corrupt_header_jpeg", "not_image"),
        ("truncated_jpeg", "corrupt_image"),
        ("decompression_bomb", "too_many_pixels"),
    ],
)
def test_bad_bytes_raise_bad_input_with_a_reason(name, reason):
    with pytest.raises(BadInput) as raised:
        decode_image(INVALID[name])
    assert raised.value.reason == reason
    assert raised.value.status == 400


def test_empty_body_is_bad_input():
    with pytest.raises(BadInput, match="empty"):
        decode_image(b"")


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(BadInput, match="8000x8000 pixels, the limit for PNG is 1,000,000"):
        decode_image(corpus.png_declaring(8000, 8000), DecodeLimits(max_full_pixels=1_000_000))


def test_real_photos_decode(samples):
    for path in samples[::16]:
        assert decode_image(path.read_bytes()).mode == "RGB"


@pytest.mark.parametrize("size", [(640, 480), (1200, 520), (4000, 3000)])
def test_a_large_jpeg_is_decoded_reduced_but_never_below_the_resize(size):
    """JPEGs decode straight to 1/2, 1/4 or 1/8 of their size (draft mode), as long as the shorter side stays at
    least the 256 the resize needs: never upsampled."""
    image = decode_image(corpus.encode(corpus.gradient(*size), "JPEG"))
    assert min(image.size) >= RESIZE_SIZE and min(image.size) < 2 * RESIZE_SIZE
    assert image.size[0] / image.size[1] == pytest.approx(size[0] / size[1], rel=0.02)


@pytest.mark.parametrize("size", [(256, 256), (224, 224), (257, 300), (300, 257), (1000, 51), (51, 1000), (3, 2)])
def test_the_eval_transform_is_torchvisions_to_the_bit(samples, size):
    """Serving computes torchvision's Resize, CenterCrop, ToTensor and Normalize without importing torchvision:
    the tensors must be the same, on real photos and on sizes whose crop rounds half-way."""
    torchvision_transform = transforms.Compose(
        [
            transforms.Resize(RESIZE_SIZE),
            transforms.CenterCrop(CROP_SIZE),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    generator = torch.Generator().manual_seed(size[0] * size[1])
    pixels = torch.randint(0, 256, (size[1], size[0], 3), dtype=torch.uint8, generator=generator).numpy()
    images = [Image.fromarray(pixels)] + [decode_image(path.read_bytes()) for path in samples[:: len(samples) // 8]]
    for image in images:
        assert torch.equal(eval_transform()(image), torchvision_transform(image)), image.size
