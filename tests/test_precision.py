"""bf16 is only used where it keeps fp32's answers: top-1 agreement of at least 99% on the sample photos."""

import pytest
import torch

from animals.acceleration import InferenceSettings, cpu_has_native_bf16, resolve_dtype
from training.predict import Predictor


def test_auto_precision_follows_the_hardware():
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == expected
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32


def test_bf16_keeps_fp32_top1_on_the_sample_photos(tiny_run, samples):
    fp32 = Predictor(tiny_run)
    bf16 = Predictor(tiny_run, settings=InferenceSettings(precision="bf16", channels_last=True))
    photos = [path.read_bytes() for path in samples]
    agreement = sum(fp32.top1(photo) == bf16.top1(photo) for photo in photos) / len(photos)
    assert agreement >= 0.99


@pytest.mark.parametrize("value", ["fp16", "int4"])
def test_unknown_precisions_are_refused(value):
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceSettings.from_config({"precision": value})
