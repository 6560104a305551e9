"""int8: the model quantized (PT2E) and compiled (inductor), checked against fp32 on a model with real margins, built
into an archive that records its calibration and agreement, served by a real TorchServe, answering in the same form
as every archive, explained from its float weights."""

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from animals.acceleration import InferenceModel, InferenceSettings
from animals.errors import UserError
from animals.folders import image_files
from serving import int8
from serving.archive import Record, trained_run_source
from serving.store import archive_settings, extract_model, publish, remove_archive
from training.predict import Predictor

INT8 = InferenceSettings(precision="int8")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, shapes_run) -> Path:
    """The shapes model quantized as an archive build does it (calibrated on its training split), as a run folder."""
    folder = tmp_path_factory.mktemp("int8")
    for name in ("model.pt", "model.json", "index_to_name.json"):
        shutil.copy2(shapes_run / name, folder / name)
    int8.quantize_into(folder, folder / "model.pt", int8.image_plan(shapes_run, None))
    return folder


def test_int8_keeps_fp32_top1_on_the_trained_shapes_model(quantized, shapes_run, shapes_test, capsys):
    held_out = image_files(shapes_test)
    fp32 = InferenceModel(shapes_run, InferenceSettings(precision="fp32"))
    compiled = InferenceModel(quantized, INT8)
    batches = int8.batches(held_out, "check")
    agreement = sum(int((fp32(batch).argmax(1) == compiled(batch).argmax(1)).sum()) for batch in batches) / len(
        held_out
    )
    with capsys.disabled():
        print(f"\n  int8/fp32 top-1 agreement, small VGG on {len(held_out)} held-out shapes: {agreement:.1%}")
    assert agreement >= 0.99


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
