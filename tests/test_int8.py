"""int8: the model quantized (PT2E) and compiled (inductor), checked against fp32 on a model with real margins, built
into an archive that records its calibration and agreement, served by a real TorchServe, answering in the same form
as every archive, explained from its int8 weights dequantized (it packs no float copy)."""

import inspect
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from animals import quantization
from animals.acceleration import InferenceModel
from animals.errors import UserError
from animals.folders import image_files
from animals.inference_settings import InferenceSettings
from animals.labels import ANIMALS
from animals.model import ModelSpec, build_model
from animals.run import check_run
from benchmarks.bench import with_float_weights
from scripts import archive as archive_script
from serving import int8
from serving.archive import fit_compiled_program, trained_run_source
from serving.publish import publish
from serving.record import Record, sha256_of
from serving.store import archive_settings, extract_model, remove_archive, verify_archive
from tests.support import REPO_ROOT, SAMPLE_DIR, archive_of, write_config
from tests.test_explanations import MIN_MASS_IN_BOX, grad_cam_shares
from training.predict import Predictor

INT8 = InferenceSettings(precision="int8")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, shapes_run) -> Path:
    """The shapes model quantized and compiled ahead of time as an archive build does it (calibrated on its training
    split), as a run folder."""
    folder = tmp_path_factory.mktemp("int8")
    for name in ("model.json", "index_to_name.json"):  # and no float weights, as in an int8 archive
        shutil.copy2(shapes_run / name, folder / name)
    int8.quantize_into(folder, shapes_run / "model.pt", int8.image_plan(shapes_run, None))
    int8.compile_ahead(folder)
    return folder


def compilations() -> int:
    """How many frames torch.compile has compiled in this process so far."""
    return sum(torch._dynamo.utils.counters["frames"].values())


def test_int8_keeps_fp32_top1_on_the_trained_shapes_model(quantized, shapes_run, shapes_test, report_figure):
    held_out = image_files(shapes_test)
    fp32 = InferenceModel(shapes_run, InferenceSettings(precision="fp32"))
    before = compilations()
    compiled = InferenceModel(quantized, INT8)
    assert compilations() == before, "the worker compiled the int8 program instead of loading the compiled one"
    batches = int8.batches(held_out, "check")
    agreement = sum(int((fp32(batch).argmax(1) == compiled(batch).argmax(1)).sum()) for batch in batches) / len(
        held_out
    )
    report_figure(f"int8/fp32 top-1 agreement, small VGG on {len(held_out)} held-out shapes: {agreement:.1%}")
    assert agreement >= 0.99
    assert compilations() == before, "a request compiled"


def test_the_compiled_program_runs_every_layer_as_a_fused_int8_call(quantized):
    """What workers load: each convolution and linear layer a fused int8 oneDNN call, none left in float (compiled
    without freezing, the program runs float convolutions between its quantize steps, at a seventh of the speed)."""
    with zipfile.ZipFile(quantized / quantization.COMPILED) as package:
        source = next(package.read(name).decode() for name in package.namelist() if name.endswith("wrapper.cpp"))
    model = build_model(ModelSpec.load(quantized / "model.json"))
    convolutions = sum(isinstance(module, torch.nn.Conv2d) for module in model.modules())
    linears = sum(isinstance(module, torch.nn.Linear) for module in model.modules())
    assert source.count("aoti_torch_cpu__qconv_pointwise") == convolutions
    assert source.count("aoti_torch_cpu__qlinear_pointwise") == linears
    assert "aoti_torch_cpu_convolution(" not in source and "aoti_torch_cpu_addmm" not in source


def test_loading_the_compiled_program_leaves_nothing_unpacked(quantized, shapes_test, tmp_path, monkeypatch):
    """TorchServe kills its workers: what a worker unpacks must not wait for its exit to be removed (the loader's
    own folder, under TMPDIR, would keep 130 MiB a VGG16 worker start)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    model = InferenceModel(quantized, INT8)
    assert not list(tmp_path.glob("aotinductor_*"))
    images = int8.batches(image_files(shapes_test)[::50], "check")[0]
    assert model(images).shape == (len(images), len(ANIMALS))  # the library, mapped, needs its files no more


WORKER = """
import json, sys
from handler import animals_handler
from animals.acceleration import InferenceModel
from animals.inference_settings import InferenceSettings
from animals.preprocessing import decode_image, eval_transform
model = InferenceModel(sys.argv[1], InferenceSettings(precision="int8"))
model(eval_transform()(decode_image(open(sys.argv[2], "rb").read())).unsqueeze(0))
imported = [name for name in ("torchvision", "torch._dynamo", "torch._inductor", "torchao") if name in sys.modules]
library, kib = False, []  # Size and Rss of each read-only mapping of the compiled library
for line in open("/proc/self/smaps"):
    if "-" in line.split(" ")[0]:
        library = " r--p " in line and "wrapper.so" in line
    elif library and line.startswith(("Size:", "Rss:")):
        kib.append(int(line.split()[1]))
print(json.dumps({"imported": imported, "library_kib": list(zip(kib[0::2], kib[1::2]))}))
"""


def test_a_worker_runs_the_compiled_program_without_importing_the_compiler_or_torchvision(quantized, samples):
    """What lets an int8 worker start in seconds and small: importing the compiler (to load the package through it)
    or torchvision (for the transform or the network) cost a VGG16 worker about 3 s and 160 MiB each, and the
    library's own copy of the weights, once copied out, 132 MiB (measured)."""
    command = [sys.executable, "-c", WORKER, str(quantized), str(samples[0])]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    worker = json.loads(result.stdout.splitlines()[-1])
    assert worker["imported"] == []
    weights_kib, resident_kib = max(worker["library_kib"])  # the library's largest read-only part: its weights
    assert weights_kib >= 64 and resident_kib <= 8, worker["library_kib"]


def test_a_cpu_the_program_was_not_compiled_for_compiles_it_and_says_why(quantized, shapes_test, tmp_path, caplog):
    """The ahead-of-time program runs only where the build's CPU features and torch are; elsewhere the worker
    compiles the packed program itself, says so in one line, and answers the same."""
    elsewhere = shutil.copytree(quantized, tmp_path / "int8")
    needs = json.loads((elsewhere / quantization.COMPILED_FOR).read_text())
    (elsewhere / quantization.COMPILED_FOR).write_text(
        json.dumps(needs | {"cpu_flags": [*needs["cpu_flags"], "tachyon"]})
    )
    images = int8.batches(image_files(shapes_test)[::10], "check")[0]
    before = compilations()
    with caplog.at_level("WARNING", logger="animals.quantization"):
        compiled_here = InferenceModel(elsewhere, INT8)
    assert compilations() > before
    assert "int8: its compiled program needs CPU features this CPU lacks (tachyon), so this worker compiles" in (
        caplog.text
    )
    assert torch.equal(compiled_here(images).argmax(1), InferenceModel(quantized, INT8)(images).argmax(1))
    (elsewhere / quantization.COMPILED_FOR).write_text(json.dumps(needs | {"torch": "1.0.0"}))
    assert "built with torch 1.0.0, this worker runs" in quantization.why_not_ahead_of_time(elsewhere)
    (elsewhere / quantization.COMPILED_FOR).write_text(json.dumps(needs | {"glibc": "99.0"}))
    assert "needs glibc 99.0 or newer, this worker has" in quantization.why_not_ahead_of_time(elsewhere)


def test_an_archive_compiled_against_a_newer_c_library_is_compiled_again_where_it_is_installed(tiny_run, tmp_path):
    """As the image's build installs an archive built on a newer system (`scripts.archive --install`): its program
    is compiled again for this machine, the record's SHA-256 follows, and a worker loads it without compiling. One
    built for a CPU the installing machine lacks is left as it is (the machine that serves may have it)."""
    built = archive_of(tiny_run, tmp_path / "animals-1.0.mar", handler={"precision": "int8"}, calibration=SAMPLE_DIR)
    elsewhere = tmp_path / "elsewhere" / built.name  # the same archive, its program compiled against glibc 99.0,
    elsewhere.parent.mkdir()  # and a library that cannot load here: only a program compiled again runs
    with zipfile.ZipFile(built) as packed, zipfile.ZipFile(elsewhere, "w") as copy:
        for entry in packed.infolist():
            data = packed.read(entry)
            if entry.filename == quantization.COMPILED_FOR:
                data = json.dumps(json.loads(data) | {"glibc": "99.0"}).encode()
            if entry.filename == quantization.COMPILED:
                data = b"built against glibc 99.0"
            copy.writestr(entry, data)
    replace(Record.read(built), sha256=sha256_of(elsewhere)).write(elsewhere)
    other_cpu = tmp_path / "other-cpu" / built.name  # a CPU the installing machine lacks: not its to decide
    other_cpu.parent.mkdir()
    with zipfile.ZipFile(built) as packed, zipfile.ZipFile(other_cpu, "w") as copy:
        for entry in packed.infolist():
            data = packed.read(entry)
            if entry.filename == quantization.COMPILED_FOR:
                needs = json.loads(data)
                data = json.dumps(needs | {"cpu_flags": [*needs["cpu_flags"], "tachyon"]}).encode()
            copy.writestr(entry, data)
    replace(Record.read(built), sha256=sha256_of(other_cpu)).write(other_cpu)
    assert fit_compiled_program(other_cpu) is None and verify_archive(other_cpu)
    config = write_config(tmp_path / "home")
    command = [sys.executable, "-m", "scripts.archive", "--config", str(config.path), "--install", str(elsewhere)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (
        "Compiling the int8 program of animals-1.0.mar again for this machine: its compiled program needs glibc 99.0"
        in (done.stdout)
    )
    installed = config.archive("1.0")
    assert verify_archive(installed).sha256 != Record.read(elsewhere).sha256
    model = extract_model(installed, tmp_path / "model")
    assert quantization.why_not_ahead_of_time(model) is None
    before = compilations()
    InferenceModel(model, INT8)(torch.zeros(2, 3, 224, 224))
    assert compilations() == before


def test_explanations_run_on_the_int8_weights_dequantized_and_fall_on_the_shape(
    quantized, shapes_run, shapes_off_centre, report_figure
):
    """An int8 archive packs no float weights: Grad-CAM runs on the int8 program's weights times their scales, each
    within a quantization step of the float weight, and its maps still fall on the shapes."""
    model, dtype = InferenceModel(quantized, INT8).eager()
    original = torch.load(shapes_run / "model.pt", weights_only=True)
    dequantized = {name: tensor.float() for name, tensor in model.state_dict().items()}
    assert dequantized.keys() == original.keys()
    rounding = 2**-8 if dtype == torch.bfloat16 else 0.0  # Grad-CAM runs in bf16 where native: 8 significant bits
    for name, weight in original.items():
        if name.endswith(".weight"):
            steps = weight.abs().flatten(1).amax(dim=1) / 127.5  # per output channel, symmetric int8
            gap = (dequantized[name] - weight).abs().flatten(1).amax(dim=1)
            assert bool((gap <= steps * (1 + 127.5 * rounding)).all()), name
    shares = grad_cam_shares(model, dtype, shapes_off_centre)
    report_figure(f"heatmap mass inside the shape's box, int8 weights dequantized: {shares['Grad-CAM']:.1%}")
    assert shares["Grad-CAM"] >= MIN_MASS_IN_BOX


def test_the_benchmark_of_an_int8_default_runs_its_float_versions_on_its_weights_dequantized(quantized, tmp_path):
    """`make bench` against `make serve PRECISION=int8` builds its bf16 and fp32 versions, and its peers, from the
    default's weights: an int8 archive's are its int8 weights, dequantized."""
    default = with_float_weights(shutil.copytree(quantized, tmp_path / "default"))
    assert check_run(default) == default
    weights = torch.load(default / "model.pt", weights_only=True)
    expected = quantization.dequantized_state_dict(quantized / quantization.PROGRAM)
    assert weights.keys() == expected.keys() and all(torch.equal(weights[name], expected[name]) for name in weights)


def test_the_int8_program_holds_int8_weights_and_quantized_activations(tiny_program):
    """Every convolution and linear layer's weights are int8 in the saved program, and activations are quantized
    between them: agreement with fp32 alone would also pass a program left in float."""
    program = torch.export.load(tiny_program)
    float_model = build_model(ModelSpec(arch="vgg11", width=1 / 16))
    layers = [m for m in float_model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    tensors = program.state_dict.values()
    assert sum(tensor.dtype == torch.int8 for tensor in tensors) == len(layers)
    assert not [tensor for tensor in tensors if tensor.is_floating_point() and tensor.dim() > 1], "float weights left"
    operations = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    assert operations.count("quantized_decomposed.quantize_per_tensor.default") >= len(layers)


def test_the_same_model_quantizes_to_the_same_bytes_in_another_process(tiny_program, tmp_path):
    """An int8 rebuild of the same model is the same archive, not a new version: nothing of the process (object ids,
    the file id some torch versions draw at random) is saved."""
    again = tmp_path / quantization.PROGRAM
    script = "import sys; from tests.test_int8 import save_tiny_program; save_tiny_program(sys.argv[1])"
    subprocess.run([sys.executable, "-c", script, str(again)], cwd=REPO_ROOT, check=True, capture_output=True)
    assert again.read_bytes() == tiny_program.read_bytes()


def test_the_zero_shot_head_stays_in_float(tiny_zero_shot):
    """Quantizing the zero-shot network quantizes up to its last ImageNet layer; the animal grouping after it (means
    of probabilities, then their log) runs in float, and answers what the float network answers, give or take int8's
    rounding of the ImageNet scores."""
    calibration = [torch.rand(2, 3, 224, 224) for _ in range(2)]
    program = quantization.quantize(tiny_zero_shot, calibration)
    nodes = [str(node.target) for node in program.graph.nodes]
    last_linear = max(index for index, target in enumerate(nodes) if target == "aten.linear.default")
    assert not [target for target in nodes[last_linear:] if "quantize" in target]
    with torch.inference_mode():
        answer, expected = program.module()(calibration[0]), tiny_zero_shot(calibration[0])
    assert answer.shape == (2, len(ANIMALS)) and torch.allclose(answer, expected, atol=0.05)


def save_tiny_program(path: Path) -> None:
    """A small VGG, seeded, quantized on seeded random batches and saved as an int8 archive build does it."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch="vgg11", width=1 / 16)).eval()
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.rand(2, 3, 224, 224, generator=generator) for _ in range(2)]
    torch.seed()  # unseeded from here on, as in a build
    quantization.save(quantization.quantize(model, calibration), Path(path))


@pytest.fixture(scope="module")
def tiny_program(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-int8") / quantization.PROGRAM
    save_tiny_program(path)
    return path


@pytest.fixture
def tiny_zero_shot() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelSpec(arch="vgg11", width=1 / 16, head="imagenet-groups")).eval()


def test_an_int8_build_below_the_required_agreement_is_refused_in_one_line(served, shapes_run):
    with pytest.raises(UserError, match=r"^int8 agrees with fp32 on .* held-out images, below the required 101%"):
        publish(served.config, trained_run_source(shapes_run), handler={"precision": "int8"}, min_agreement=1.01)
    assert [path.name for path in served.config.model_store.glob("*.mar")] == ["animals-1.0.mar"]


def test_an_int8_archive_records_its_checks_and_is_served_like_any_other(served, shapes_run, shapes_test):
    source = trained_run_source(shapes_run)
    version, archive = publish(served.config, source, handler={"precision": "int8"}, registered=served.versions())
    try:
        record = Record.read(archive)
        assert record.precision == "int8" and archive_settings(archive).precision == "int8"
        assert record.calibration == f"256 images: the training split of {shapes_run}; checked on its valid+test"
        assert record.agreement["images"] == 100 and record.agreement["top1_with_fp32"] >= 0.99
        with zipfile.ZipFile(archive) as packed:
            assert {quantization.PROGRAM, quantization.COMPILED, quantization.COMPILED_FOR} <= set(packed.namelist())
            assert not [name for name in packed.namelist() if name.endswith(".pt")], "float weights packed"
        served.register(archive.name, 1, None, None)
        with tempfile.TemporaryDirectory() as work:
            reference = Predictor(extract_model(archive, Path(work)), settings=INT8)
            for image in image_files(shapes_test)[::60]:
                answer = served.predict(image.read_bytes(), version)
                assert list(answer) == list(reference.top_k(image.read_bytes()))
                assert len(answer) == 5 and list(answer.values()) == sorted(answer.values(), reverse=True)
        explanation = served.explain(image_files(shapes_test)[0].read_bytes(), version)
        assert explanation["computed_in"] in ("bf16", "fp32") and len(explanation["heatmap"]) == 14
        url = f"{served.inference_url}/predictions/{served.model}/{version}"
        refused = served.send("POST", url, "inference", data=b"not an image")
        assert refused.status_code == 400 and json.loads(refused.text)["reason"] == "not_image"
    finally:
        if version in served.versions():
            served.unregister(version)
        remove_archive(served.config, archive.name)


def test_the_agreement_an_int8_build_needs_by_default_is_the_readmes(capsys):
    """README: "Below 99% agreement the build stops"; `make archive` (and the library under it) needs that much."""
    stated = re.search(r"Below (\d+)% agreement the build stops", (REPO_ROOT / "README.md").read_text())
    with pytest.raises(SystemExit):
        archive_script.main(["--help"])
    assert f"top-1 agreement with fp32 needed ({int(stated[1]) / 100})" in " ".join(capsys.readouterr().out.split())
    assert inspect.signature(publish).parameters["min_agreement"].default == int(stated[1]) / 100
