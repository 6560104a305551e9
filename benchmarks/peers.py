"""In-process peers: the runtimes a user might pick instead of TorchServe for the same model, converted from the same
weights here, each measured on the model alone (preprocessed images in, scores out, no decoding).

torch eager fp32 and bf16, and the int8 program as the handler loads it; ONNX Runtime fp32; OpenVINO bf16 (where
the CPU computes bf16 natively) and OpenVINO int8 (NNCF post-training quantization, calibrated on the same images),
both with the throughput hint and asynchronous requests, as OpenVINO recommends for throughput.
"""

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from animals.acceleration import InferenceModel
from animals.inference_settings import InferenceSettings, cpu_has_native_bf16
from animals.model import ModelSpec, load_model

BATCH = 8


def throughput(run: Callable[[], int], seconds: float) -> float:
    """Images per second of `run` (which returns how many images it did) in a closed loop, after one warm-up call."""
    run()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += run()
    return done / (time.perf_counter() - started)


def measure_peers(folder: Path, images: torch.Tensor, seconds: float, int8_folder: Path | None) -> dict[str, float]:
    """Images per second of each peer on `images` (N x 3 x 224 x 224, preprocessed), by name."""
    batch = images[:BATCH]
    model = load_model(ModelSpec.load(folder / "model.json"), folder / "model.pt")
    results = {}
    for name, precision in (("torch eager fp32", "fp32"), ("torch eager bf16", "bf16")):
        if precision == "bf16" and not cpu_has_native_bf16():
            continue
        eager = InferenceModel(folder, InferenceSettings(precision=precision), max_batch=BATCH)
        results[name] = throughput(lambda eager=eager: len(eager(batch)), seconds)
    if int8_folder is not None:
        compiled = InferenceModel(int8_folder, InferenceSettings(precision="int8"), max_batch=BATCH)
        results["torch int8 (the served program)"] = throughput(lambda: len(compiled(batch)), seconds)
    results["ONNX Runtime fp32"] = onnx_runtime(model, batch, seconds)
    results |= openvino(model, images, seconds)
    return {name: round(value, 2) for name, value in results.items()}


def onnx_runtime(model: torch.nn.Module, batch: torch.Tensor, seconds: float) -> float:
    import onnxruntime

    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "model.onnx"
        dynamic = ({0: torch.export.Dim("batch", min=1, max=64)},)
        torch.onnx.export(model, (batch,), str(path), dynamic_shapes=dynamic, dynamo=True, verbose=False)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: batch.numpy()}
    return throughput(lambda: len(session.run(None, feed)[0]), seconds)


def openvino(model: torch.nn.Module, images: torch.Tensor, seconds: float) -> dict[str, float]:
    """OpenVINO's CPU plugin with one image per request, as many requests in flight as it finds optimal."""
    import nncf
    import openvino as ov

    converted = ov.convert_model(model, example_input=images[:1], input=[1, *images.shape[1:]])
    results = {}
    if cpu_has_native_bf16():
        results["OpenVINO bf16"] = _openvino_throughput(converted, images, "bf16", seconds)
    calibration = nncf.Dataset([image.unsqueeze(0).numpy() for image in images])
    quantized = nncf.quantize(converted, calibration, subset_size=len(images))
    results["OpenVINO int8 (NNCF)"] = _openvino_throughput(quantized, images, None, seconds)
    return results


def _openvino_throughput(model, images: torch.Tensor, precision: str | None, seconds: float) -> float:
    import openvino as ov

    hints = {"PERFORMANCE_HINT": "THROUGHPUT"} | ({"INFERENCE_PRECISION_HINT": precision} if precision else {})
    compiled = ov.Core().compile_model(model, "CPU", hints)
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    inputs = [image.unsqueeze(0).numpy() for image in images]

    def run() -> int:
        for image in inputs:
            queue.start_async({0: image})
        queue.wait_all()
        return len(inputs)

    return throughput(run, seconds)
