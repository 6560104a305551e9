"""How the same model runs fast: precision (fp32, bf16 or int8), memory format, compilation and threads.

"auto" runs bf16 where the hardware computes it natively (bf16-capable GPUs; x86 CPUs with AVX-512 BF16 or AMX)
and it measures faster than fp32 there (some CPUs with AVX-512 BF16 and no AMX multiply bf16 slower than fp32), and
fp32 elsewhere. int8 runs the quantized program packed beside the weights (animals.quantization), always
compiled. The handler, offline prediction and the benchmark's in-process references all run a model through
InferenceModel, so they run it the same way.
"""

import functools
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from animals import quantization
from animals.core_share import CoreShare, available_cores
from animals.inference_settings import SHARED_THREADS, InferenceSettings, cpu_has_native_bf16
from animals.labels import read_index_to_name
from animals.model import ModelSpec, load_model

INPUT_SHAPE = (3, 224, 224)
BF16_MIN_SPEEDUP = 1.2  # "auto" takes bf16 on a CPU only this much faster than fp32: near parity, fp32's answers win
PROBE_SIDE = 1024  # the matrices "auto" times: large enough to time the arithmetic, not the call (0.25 s in all here)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the model's inputs have: bf16 when asked for, or when "auto" and the device computes bf16 natively
    and (on a CPU) measurably faster; fp32 otherwise (int8 programs take fp32 images and quantize them themselves)."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        faster = cpu_has_native_bf16() and bf16_speedup() >= BF16_MIN_SPEEDUP
        return torch.bfloat16 if faster else torch.float32
    return torch.float32


@functools.cache
def bf16_speedup() -> float:
    """How many times faster this CPU multiplies bf16 matrices than fp32 ones, on this process's threads (best of
    three each). The CPU flag is not enough: AVX-512 BF16 made VGG16 twice as fast on an AMD EPYC, and slower than
    fp32 on a Sapphire Rapids VM without AMX (matmul 134 against 241 GFLOP/s), both measured."""
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        matrix = torch.rand(PROBE_SIDE, PROBE_SIDE).to(dtype)
        torch.mm(matrix, matrix)  # the first call picks and caches oneDNN's kernel
        seconds[dtype] = min(timeit.repeat(lambda matrix=matrix: torch.mm(matrix, matrix), number=1, repeat=3))
    return seconds[torch.float32] / seconds[torch.bfloat16]


def effective_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """What "auto" is on this machine ("bf16" or "fp32"); any other precision as it is."""
    if precision != "auto":
        return precision
    return "bf16" if resolve_dtype(precision, torch.device(device)) == torch.bfloat16 else "fp32"


class InferenceModel:
    """A model folder (a training run, or an unpacked archive) run as `settings` say: images in, probabilities out.

    With compilation at its first calls, every batch size up to `max_batch` is compiled here, so that no request waits
    for it; a program compiled ahead of time starts without a call (its first calls cost 10-20% more, measured). With
    shared threads, each call runs on the threads the server's other busy workers leave it (animals.core_share).
    """

    def __init__(
        self,
        folder: Path,
        settings: InferenceSettings,
        device: torch.device | str = "cpu",
        weights: str = "model.pt",
        max_batch: int = 8,
    ) -> None:
        self.cores = None
        if settings.threads == SHARED_THREADS:  # the share's threads in a call, one outside (an explanation)
            self.cores = CoreShare(available_cores())
            torch.set_num_threads(1)
        elif settings.threads > 0:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.folder, self.weights = Path(folder), weights
        self.device = torch.device(device)
        self.labels = read_index_to_name(Path(folder) / "index_to_name.json")
        self.dtype = resolve_dtype(settings.precision, self.device)
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        compiles_at_first_calls = settings.compile
        if settings.precision == "int8":
            self.model, compiles_at_first_calls = quantization.load_compiled(Path(folder))
        else:
            model = load_model(ModelSpec.load(Path(folder) / "model.json"), Path(folder) / weights, self.device)
            self.model = model.to(dtype=self.dtype, memory_format=self.memory_format)
            if settings.compile:
                torch._inductor.config.freezing = True
                self.model = torch.compile(self.model, dynamic=True)
        if compiles_at_first_calls:
            self.warm_up(max_batch)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x 224 x 224 preprocessed fp32 images to N x classes fp32 probabilities."""
        with self.shared_threads(), torch.inference_mode():
            return self.model(self.as_input(images)).float().softmax(dim=1).cpu()

    @contextmanager
    def shared_threads(self) -> Iterator[None]:
        """Compute the block on the threads the core share gives it, then give the caller its own back."""
        if self.cores is None:
            yield
            return
        before = torch.get_num_threads()
        with self.cores.claim() as threads:
            torch.set_num_threads(threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    def eager(self) -> tuple[torch.nn.Module, torch.dtype]:
        """The model as an eager float module that gradients can run through, and its dtype: the one that predicts
        when it is one, else loaded from the float weights (compiled) or from the int8 program's weights, dequantized
        (int8: its archive packs no float copy), in the dtype "auto" resolves to."""
        if not self.settings.compiled:
            return self.model, self.dtype
        dtype = resolve_dtype("auto", self.device)
        if self.settings.precision == "int8":
            weights = quantization.dequantized_state_dict(self.folder / quantization.PROGRAM)
        else:
            weights = self.folder / self.weights
        model = load_model(ModelSpec.load(self.folder / "model.json"), weights, self.device)
        return model.to(dtype=dtype, memory_format=self.memory_format), dtype

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)

    def warm_up(self, max_batch: int) -> None:
        """Run every kind of batch once before requests come: a batch of 2 (torch.compile with dynamic=True compiles
        it as one graph for every size from 2 to max_batch) and batch 1, which it specialises."""
        sample = torch.zeros(1, *INPUT_SHAPE)
        if max_batch > 1:
            self(sample.expand(2, *INPUT_SHAPE).clone())
        self(sample)
