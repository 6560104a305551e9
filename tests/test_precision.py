"""bf16 is only used where it keeps fp32's answers: top-1 agreement of at least 99%, measured on models whose
answers have real margins."""

import pytest
import torch

from animals import acceleration
from animals.acceleration import InferenceModel, resolve_dtype
from animals.folders import image_files
from animals.inference_settings import InferenceSettings
from animals.preprocessing import decode_image
from training.predict import Predictor
from training.zero_shot_report import zero_shot_network

BF16 = InferenceSettings(precision="bf16", channels_last=True)
MIN_AGREEMENT = 0.99


@pytest.mark.parametrize(
    ("flag", "speedup", "expected"),
    [(True, 2.0, torch.bfloat16), (True, 0.56, torch.float32), (False, 2.0, torch.float32)],
)
def test_auto_takes_bf16_only_where_the_cpu_has_it_and_multiplies_it_faster(monkeypatch, flag, speedup, expected):
    """AVX-512 BF16 is twice fp32 on some CPUs and slower on others (0.56x on the Sapphire Rapids VM of the README's
    benchmark): "auto" goes by the measured speed where the CPU has the flag."""
    monkeypatch.setattr(acceleration, "cpu_has_native_bf16", lambda: flag)
    monkeypatch.setattr(acceleration, "bf16_speedup", lambda: speedup)
    assert resolve_dtype("auto", torch.device("cpu")) == expected
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_the_bf16_speed_is_measured_on_this_cpu():
    assert acceleration.bf16_speedup() > 0 and acceleration.bf16_speedup() is acceleration.bf16_speedup()  # once


def test_bf16_computes_in_bf16_and_fp32_in_fp32(tiny_run):
    """Agreement alone would pass a bf16 that silently ran fp32: the weights and the rounding show which it is."""
    images = torch.rand(2, 3, 224, 224)
    fp32, bf16 = InferenceModel(tiny_run, InferenceSettings(precision="fp32")), InferenceModel(tiny_run, BF16)
    assert {parameter.dtype for parameter in fp32.model.parameters()} == {torch.float32}
    assert {parameter.dtype for parameter in bf16.model.parameters()} == {torch.bfloat16}
    assert not torch.equal(fp32(images), bf16(images))


def agreement(first: list[int] | torch.Tensor, second: list[int] | torch.Tensor) -> float:
    return sum(a == b for a, b in zip(list(first), list(second), strict=True)) / len(first)


def test_bf16_keeps_fp32_top1_of_the_trained_shapes_model(shapes_run, shapes_test, report_figure):
    images = [path.read_bytes() for path in image_files(shapes_test)]
    fp32, bf16 = Predictor(shapes_run), Predictor(shapes_run, settings=BF16)
    figure = agreement([fp32.top1(image) for image in images], [bf16.top1(image) for image in images])
    report_figure(f"bf16/fp32 top-1 agreement, small VGG on {len(images)} held-out shapes: {figure:.1%}")
    assert figure >= MIN_AGREEMENT


def test_bf16_keeps_fp32_top1_of_the_zero_shot_grouping_on_real_photos(samples, report_figure):
    """Real ImageNet scores from the EfficientNet-Lite0 stand-in. (Full VGG16 with random weights is no check: it
    answers the same animal for every photo, so any precision agrees with it.)"""
    stand_in = zero_shot_network("efficientnet-lite0")
    inputs = torch.stack([stand_in.transform(decode_image(path.read_bytes())) for path in samples])
    with torch.inference_mode():  # in batches of 8, as served (one batch of 160 takes several times longer)
        fp32 = torch.cat([stand_in.model(batch).argmax(dim=1) for batch in inputs.split(8)])
        stand_in.model.to(torch.bfloat16)
        bf16 = torch.cat([stand_in.model(batch.to(torch.bfloat16)).argmax(dim=1) for batch in inputs.split(8)])
    figure = agreement(fp32, bf16)
    report_figure(f"bf16/fp32 top-1 agreement, zero-shot EfficientNet-Lite0 on {len(samples)} photos: {figure:.1%}")
    assert figure >= MIN_AGREEMENT


@pytest.mark.parametrize("value", ["fp16", "int4"])
def test_unknown_precisions_are_refused(value):
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceSettings.from_config({"precision": value})


def test_a_compiled_model_compiles_every_batch_size_before_its_first_request(tiny_run):
    """Requests of any batch size up to the worker's largest find their graph compiled at start."""
    compiled = InferenceModel(tiny_run, InferenceSettings(precision="fp32", compile=True), max_batch=8)
    frames = torch._dynamo.utils.counters["frames"]
    before = dict(frames)
    for size in range(1, 9):
        assert compiled(torch.rand(size, 3, 224, 224)).shape == (size, 10)
    assert dict(frames) == before
