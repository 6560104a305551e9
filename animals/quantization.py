"""int8: static post-training quantization of the model, and the compiled program that serves it.

The float model is exported with a dynamic batch dimension, quantized with torchao's PT2E flow and the x86 inductor
quantizer (per-channel int8 weights, int8 activations calibrated on real images), exported again and saved. At load,
torch.compile (inductor, with freezing) turns the program into fused int8 convolutions and matmuls (VNNI/AMX).
"""

import io
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

PROGRAM = "model.int8.pt2"  # beside model.pt in a run folder or an archive
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

    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
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


def load_compiled(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The saved program compiled for this CPU. Compilation happens at the first calls (InferenceModel.warm_up)."""
    # Importing the quantizer registers the passes that fuse int8 convolutions and matmuls with inductor: without
    # them the program runs its quantize/dequantize steps in fp32, at a fifth of the speed (measured).
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401

    torch._inductor.config.freezing = True
    return torch.compile(torch.export.load(path).module(), dynamic=True)
