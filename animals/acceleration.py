"""Inference settings that make the same model faster: precision (fp32 or bf16), memory format and threads.

bf16 is used only where the hardware computes it natively (AVX-512 BF16 or AMX on x86 CPUs, bf16-capable GPUs);
elsewhere "auto" stays fp32. The handler and the benchmark's in-process ceiling apply the same settings.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class InferenceSettings:
    precision: str = "auto"
    channels_last: bool = True
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default (one per core)

    @classmethod
    def from_config(cls, section: dict) -> "InferenceSettings":
        settings = cls(
            precision=str(section.get("precision", cls.precision)),
            channels_last=bool(section.get("channels_last", cls.channels_last)),
            threads=int(section.get("threads", cls.threads)),
        )
        if settings.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {settings.precision!r}")
        return settings


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in BF16_CPU_FLAGS)


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype to run in: bf16 when asked for, or when "auto" and the device computes bf16 natively."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
        return torch.bfloat16 if native else torch.float32
    return torch.float32


def prepare(
    model: torch.nn.Module, settings: InferenceSettings, device: torch.device
) -> tuple[torch.nn.Module, torch.dtype]:
    """Apply the settings to an eval-mode model; return it and the dtype its inputs must have."""
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    dtype = resolve_dtype(settings.precision, device)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    return model.to(device=device, dtype=dtype, memory_format=memory_format), dtype


def as_input(
    batch: torch.Tensor, dtype: torch.dtype, settings: InferenceSettings, device: torch.device
) -> torch.Tensor:
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    return batch.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)
