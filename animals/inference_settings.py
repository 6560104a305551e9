"""How the model is asked to run (model-config.yaml's handler section), readable without importing torch: the
commands that only start, stop or manage TorchServe stay quick to start."""

from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16", "int8")
SHARED_THREADS = "shared"
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class InferenceSettings:
    """The handler section of model-config.yaml that says how to run the model."""

    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False  # torch.compile (inductor, freezing) for fp32 and bf16; int8 is always compiled
    # torch intra-op threads: a count; 0 keeps torch's default (one per core); "shared": each batch runs on the cores
    # no other busy worker computes on (animals.core_share)
    threads: int | str = 0

    @classmethod
    def from_config(cls, section: dict) -> "InferenceSettings":
        settings = cls(
            precision=str(section.get("precision", cls.precision)),
            channels_last=bool(section.get("channels_last", cls.channels_last)),
            compile=bool(section.get("compile", cls.compile)),
            threads=_threads(section.get("threads", cls.threads)),
        )
        if settings.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {settings.precision!r}")
        return settings

    @property
    def compiled(self) -> bool:
        return self.compile or self.precision == "int8"


def _threads(value: object) -> int | str:
    if value == SHARED_THREADS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"threads must be a count of threads, 0 (one per core) or {SHARED_THREADS!r}, not {value!r}")


def cpu_has_native_bf16() -> bool:
    return bool(cpu_flags() & set(BF16_CPU_FLAGS))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as Linux names them (empty where /proc/cpuinfo cannot be read)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return set()
    return {flag for line in lines if line.startswith("flags") for flag in line.partition(":")[2].split()}
