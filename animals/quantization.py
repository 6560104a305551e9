"""int8: static post-training quantization of the model, and the compiled program that serves it.

The float model is exported with a dynamic batch dimension, quantized with torchao's PT2E flow and the x86 inductor
quantizer (per-channel int8 weights, int8 activations calibrated on real images), exported again and saved. Inductor
(with freezing) turns the program into fused int8 convolutions and matmuls (VNNI/AMX): once, ahead of time, when the
archive is built (AOTInductor: a shared library packed beside the program, with the CPU features it needs), so that
a worker only loads it; a worker whose CPU, C library or torch does not fit compiles the program itself instead.
"""

import ctypes
import io
import json
import logging
import mmap
import os
import platform
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from animals.inference_settings import cpu_flags

PROGRAM = "model.int8.pt2"  # beside model.pt in a run folder or an archive
COMPILED = "model.int8.aoti.pt2"  # PROGRAM compiled ahead of time, and what it needs to run:
COMPILED_FOR = "model.int8.aoti.json"
# x86-64 levels the compiled code is built for (fixed ones, not this CPU's own -march=native), best first, with the
# /proc/cpuinfo flags each needs.
X86_LEVELS = {
    "x86-64-v4": ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"),
    "x86-64-v3": ("avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"),
}
# CPUs that multiply int8 by int8 straight into int32. Without them (AVX2 alone) products are summed pairwise in
# int16, which saturates: activations are then quantized to 7 bits, as torchao advises (on an AVX2-only AMD EPYC
# the shapes model agreed with fp32 on 98% of images with 8-bit activations, on 100% with 7-bit, measured).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
PT_GNU_STACK, PF_X = 0x6474E551, 0x1
WEIGHT_SYMBOLS = ("_binary_constants_bin_start", "_binary_constants_bin_end")  # a compiled library's own weights
log = logging.getLogger(__name__)
MAX_BATCH = 64
SERIALIZATION_ID = ".data/serialization_id"
# Kept in float: the zero-shot head, whose means of probabilities are the answer. Every convolution and linear
# layer is int8 (keeping the first convolution in float costs 10% of VGG16's int8 throughput, measured).
FLOAT_MODULES = ("classifier.7",)


def _quantizer():
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    config = get_default_x86_inductor_quantization_config(reduce_range=not VNNI_FLAGS & cpu_flags())
    quantizer = X86InductorQuantizer().set_global(config)
    for name in FLOAT_MODULES:
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


def quantize(model: torch.nn.Module, calibration: Iterable[torch.Tensor]) -> torch.export.ExportedProgram:
    """The int8 program of an eval-mode float model, calibrated on batches of preprocessed images."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    batches = iter(calibration)
    first = next(batches)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    exported = torch.export.export(model.eval(), (first,), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_pt2e(exported, _quantizer())
    with torch.no_grad():
        for images in (first, *batches):
            prepared(images)
    program = torch.export.export(
        _without_unused_weights(convert_pt2e(prepared)), (first,), dynamic_shapes=({0: batch},)
    )
    for node in program.graph_module.graph.nodes:
        node.meta.pop("from_node", None)  # provenance that names Python object ids: it would change every build
    return program


def _without_unused_weights(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop the float weights that quantization replaced by int8 constants: nothing reads them any more, but they
    would be saved with the program (four times the size of the int8 ones)."""
    module.graph.eliminate_dead_code()
    read = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    for name, _ in list(module.named_parameters()):
        if name not in read:
            owner, _, attribute = name.rpartition(".")
            delattr(module.get_submodule(owner), attribute)
    return module


def save(program: torch.export.ExportedProgram, path: Path) -> None:
    """Save the program so that the same program gives the same bytes: torch writes an id into each file, drawn at
    random by some versions (torch 2.14 derives it from the content), which is zeroed here."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    with zipfile.ZipFile(buffer) as saved, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as fixed:
        for entry in saved.infolist():
            data = saved.read(entry.filename)
            fixed.writestr(entry, b"0" * len(data) if entry.filename.endswith(SERIALIZATION_ID) else data)


def compile_ahead(folder: Path) -> None:
    """Compile folder/PROGRAM for this machine's x86-64 level into folder/COMPILED, and record in COMPILED_FOR what a
    CPU needs to run it. Not on other machines (the workers compile there)."""
    if platform.machine() != "x86_64":
        return
    level = next((name for name, flags in X86_LEVELS.items() if set(flags) <= cpu_flags()), None)
    if level is None:
        return
    _register_int8_lowerings()
    isa = str(torch._inductor.cpu_vec_isa.pick_vec_isa()).split()  # e.g. ["avx512", "avx512_vnni"]
    needs = sorted(set(X86_LEVELS[level]) | {flag for flag in isa if flag not in ("avx512", "avx2")})
    program = torch.export.load(folder / PROGRAM)
    # Freezing (which folds the int8 weights into the fused convolutions and matmuls) applies only without autograd.
    with torch.no_grad(), torch._inductor.config.patch({"freezing": True, "cpp.march": level}):
        torch._inductor.aoti_compile_and_package(program, package_path=str(folder / COMPILED))
    _without_executable_stack(folder / COMPILED)
    record = {"torch": torch.__version__, "glibc": platform.libc_ver()[1], "march": level, "cpu_flags": needs}
    (folder / COMPILED_FOR).write_text(json.dumps(record, indent=2) + "\n")


def load_compiled(folder: Path) -> tuple[Callable[[torch.Tensor], torch.Tensor], bool]:
    """The int8 program ready to run on this CPU, and whether it compiles at its first calls: the ahead-of-time
    compiled one where it can run here (loaded in a fraction of a second; False), else the program compiled here, at
    its first calls (True: InferenceModel.warm_up makes them)."""
    reason = why_not_ahead_of_time(folder)
    if reason is None:
        try:
            return _load_package(folder / COMPILED), False
        except RuntimeError as error:
            reason = f"its compiled program does not load here ({str(error).strip().splitlines()[-1]})"
    log.warning("int8: %s, so this worker compiles the int8 program itself (seconds to a minute)", reason)
    _register_int8_lowerings()
    torch._inductor.config.freezing = True
    return torch.compile(torch.export.load(folder / PROGRAM).module(), dynamic=True), True


def dequantized_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The float state dict that the int8 program at `path` holds: each convolution's and linear layer's int8
    weights times their per-channel scales, under the module names of the model it was quantized from. An int8
    archive packs no float weights; this is what its explanations run on."""
    _register_int8_lowerings()  # the program's quantize/dequantize operators
    program = torch.export.load(path)
    tensors = {
        spec.arg.name: program.state_dict.get(spec.target, program.constants.get(spec.target))
        for spec in program.graph_signature.input_specs
        if spec.target is not None
    }
    state_dict = {}
    for node in program.graph.nodes:
        if node.target not in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default):
            continue
        module, _ = list(node.meta["nn_module_stack"].values())[-1]
        dequantize = node.args[1]  # dequantize_per_channel(int8 weight, scales, zero points, axis, ...)
        weight, scales, zero_points = (tensors[argument.name] for argument in dequantize.args[:3])
        per_channel = (-1,) + (1,) * (weight.dim() - 1)  # the axis is 0, output channels, for both kinds of layer
        state_dict[f"{module}.weight"] = (weight.float() - zero_points.view(per_channel)) * scales.view(per_channel)
        state_dict[f"{module}.bias"] = tensors[node.args[2].name]
    return state_dict


def _load_package(package: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The compiled program of an AOTInductor package, through torch's C++ loader: torch._inductor.aoti_load_package
    wraps the same loader but imports the compiler first (sympy, dynamo), which made a VGG16 worker's load take 3.4 s
    and 424 MiB instead of 0.3 s and 266 MiB (measured).

    The loader unpacks the package into a folder of TMPDIR that only its destructor removes, which a TorchServe
    worker never reaches (it is killed): 130 MiB left behind at every VGG16 worker start. It unpacks into a folder
    of its own here, removed as soon as the library is loaded (the library stays mapped in memory)."""
    with tempfile.TemporaryDirectory(prefix="int8-package-") as scratch:
        previous = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch  # where the loader unpacks
        try:
            loader = torch._C._aoti.AOTIModelPackageLoader(str(package), "model", False, 1, -1)
        finally:
            if previous is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = previous
        for library in Path(scratch).rglob("*.so"):
            _release_weights_copy(library)
    # It reads its input in the layout it was exported with (contiguous) whatever the tensor's strides say.
    return lambda images: loader.boxed_run([images.contiguous()])[0]


def _release_weights_copy(library: Path) -> None:
    """Give back the memory of the weights inside a loaded AOTInductor library: the loader copies them out into the
    tensors the program runs on and never reads the library's copy again, which would stay resident otherwise (132
    MiB of a VGG16 worker's RSS, measured)."""
    try:
        loaded = ctypes.CDLL(str(library), mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        start, end = (ctypes.addressof(ctypes.c_char.in_dll(loaded, symbol)) for symbol in WEIGHT_SYMBOLS)
    except (OSError, ValueError) as error:  # not loaded, or built without embedded weights
        log.info("int8: the weights inside %s stay resident (%s)", library.name, error)
        return
    first, last = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE, end // mmap.PAGESIZE * mmap.PAGESIZE  # whole pages
    if last > first:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), mmap.MADV_DONTNEED)


def why_not_ahead_of_time(folder: Path, cpu: bool = True) -> str | None:
    """Why the ahead-of-time compiled program in `folder` cannot run here (this CPU's features left out unless
    `cpu`), or None when it can."""
    if not (folder / COMPILED_FOR).is_file():
        return "the archive holds no ahead-of-time compiled program for this machine's kind"
    built = json.loads((folder / COMPILED_FOR).read_text())
    missing = sorted(set(built["cpu_flags"]) - cpu_flags())
    if cpu and missing:
        return f"its compiled program needs CPU features this CPU lacks ({', '.join(missing)})"
    here = platform.libc_ver()[1]
    if _as_numbers(here) < _as_numbers(built["glibc"]):
        return f"its compiled program needs glibc {built['glibc']} or newer, this worker has {here or 'none'}"
    if built["torch"] != torch.__version__:
        return f"its compiled program was built with torch {built['torch']}, this worker runs {torch.__version__}"
    return None


def _as_numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _register_int8_lowerings() -> None:
    """Importing the quantizer registers the passes that fuse int8 convolutions and matmuls with inductor: without
    them the program runs its quantize/dequantize steps in fp32, at a fifth of the speed (measured)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


def _without_executable_stack(package: Path) -> None:
    """Clear the executable-stack flag of the package's shared libraries: inductor assembles the weights without a
    .note.GNU-stack section, which marks the library as needing one, and glibc 2.41 refuses to load such a library."""
    with zipfile.ZipFile(package) as packed:
        entries = [(entry, packed.read(entry.filename)) for entry in packed.infolist()]
    with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as packed:
        for entry, data in entries:
            packed.writestr(entry, _stack_not_executable(data) if entry.filename.endswith(".so") else data)


def _stack_not_executable(elf: bytes) -> bytes:
    """A 64-bit little-endian ELF file with its PT_GNU_STACK program header's execute permission cleared."""
    data = bytearray(elf)
    (header_offset,) = struct.unpack_from("<Q", data, 0x20)
    header_size, header_count = struct.unpack_from("<HH", data, 0x36)
    for index in range(header_count):
        at = header_offset + index * header_size
        kind, flags = struct.unpack_from("<II", data, at)
        if kind == PT_GNU_STACK:
            struct.pack_into("<I", data, at + 4, flags & ~PF_X)
    return bytes(data)
