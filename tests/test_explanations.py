"""Explanations (Grad-CAM): the map falls on what the model learnt from, on a model trained on shapes at known places;
TorchServe's explanations API answers per request, in a batch with predictions and bad inputs, with the same 400s,
and leaves nothing behind."""

import base64
import json
import logging
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ts.context import RequestProcessor

from animals.explanation import GradCam, overlay
from animals.folders import image_files
from animals.labels import ANIMALS
from animals.model import ModelSpec, load_model
from animals.preprocessing import CROP_SIZE, decode_image, eval_transform, seen_region
from scripts import manage
from tests.shapes import BOXES
from tests.support import archive_of, handler_context, loaded_handler, run_handler

MIN_MASS_IN_BOX = 0.6
CELL = 16  # pixels of the model's input per heatmap cell (224 / 14): the map places nothing more finely
EXPLANATION_KEYS = {
    "label", "probability", "explained_label", "explained_probability", "method", "computed_in", "region", "heatmap",
}  # fmt: skip


def box_masks(folder, images, margin: int = 0) -> torch.Tensor:
    """Each image's shape box, grown by `margin` pixels, as a mask over the model's 224 x 224 input (the centre crop of
    the resized image)."""
    boxes = json.loads((folder / BOXES).read_text())
    masks = torch.zeros(len(images), CROP_SIZE, CROP_SIZE)
    for index, path in enumerate(images):
        width, height = Image.open(path).size
        left, top, right, bottom = seen_region(width, height)
        x0, y0, x1, y1 = boxes[f"{path.parent.name}/{path.name}"]
        columns = [round((x / width - left) / (right - left) * CROP_SIZE) for x in (x0, x1)]
        rows = [round((y / height - top) / (bottom - top) * CROP_SIZE) for y in (y0, y1)]
        masks[index, max(rows[0] - margin, 0) : rows[1] + margin, max(columns[0] - margin, 0) : columns[1] + margin] = 1
    return masks


def mass_in_boxes(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """The mean share of each map's total that falls inside its box, the map upscaled as the overlay draws it."""
    upscaled = torch.nn.functional.interpolate(maps[:, None], size=(CROP_SIZE, CROP_SIZE), mode="bilinear")[:, 0]
    return float(((upscaled * masks).sum(dim=(1, 2)) / upscaled.sum(dim=(1, 2)).clamp_min(1e-12)).mean())


def grad_cam_shares(model: torch.nn.Module, dtype: torch.dtype, folder: Path) -> dict[str, float]:
    """The share of Grad-CAM's maps of the top-1 labels that falls inside the shapes' boxes (a cell around each), and
    the same share for maps that know nothing: uniform, centred and random."""
    images = image_files(folder)
    inputs = torch.stack([eval_transform()(Image.open(path).convert("RGB")) for path in images])
    grad_cam = GradCam(model, dtype)
    maps = torch.cat([grad_cam(chunk, [None] * len(chunk))[0] for chunk in inputs.split(50)])
    masks = box_masks(folder, images, margin=CELL)  # the box to the map's resolution: one cell around it
    centre = torch.zeros_like(maps[0])
    centre[5:9, 5:9] = 1
    baselines = {
        "uniform": torch.ones_like(maps),
        "centred": centre.expand_as(maps),
        "random": torch.rand(maps.shape, generator=torch.Generator().manual_seed(0)),
    }
    shares = {name: mass_in_boxes(fake, masks) for name, fake in baselines.items()}
    return {"Grad-CAM": mass_in_boxes(maps, masks)} | shares


def test_the_map_falls_on_the_shape_the_model_looks_at(shapes_run, shapes_off_centre, report_figure):
    model = load_model(ModelSpec.load(shapes_run / "model.json"), shapes_run / "model.pt")
    shares = grad_cam_shares(model, torch.float32, shapes_off_centre)
    report_figure(
        f"heatmap mass inside the shape's box, {len(image_files(shapes_off_centre))} held-out shapes: "
        + ", ".join(f"{name} {share:.1%}" for name, share in shares.items())
    )
    assert float(box_masks(shapes_off_centre, image_files(shapes_off_centre)).mean()) < 0.25  # under a quarter seen
    assert shares["Grad-CAM"] >= MIN_MASS_IN_BOX
    assert all(shares[name] < MIN_MASS_IN_BOX for name in shares if name != "Grad-CAM")


def explain(served, body: bytes, label: str | None = None, headers: dict | None = None):
    """POST /explanations/animals as curl would send it; the label, if any, in the X-Label header."""
    headers = (headers or served.headers()) | ({"X-Label": label} if label else {})
    return served.send("POST", f"{served.inference_url}/explanations/{served.model}", data=body, headers=headers)


def assert_is_an_explanation(answer: dict, labels=ANIMALS) -> None:
    assert set(answer) == EXPLANATION_KEYS
    assert answer["method"] == "grad-cam" and answer["computed_in"] in ("bf16", "fp32")
    assert answer["label"] in labels and answer["explained_label"] in labels
    heatmap = torch.tensor(answer["heatmap"])
    assert heatmap.shape == (14, 14) and float(heatmap.min()) >= 0 and float(heatmap.max()) == 1
    left, top, right, bottom = answer["region"]
    assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1


def test_one_photo_is_explained_for_its_top1_label(served, samples):
    photo = samples[0].read_bytes()
    prediction = served.predict(photo)
    answer = explain(served, photo)
    assert answer.status_code == 200
    explanation = answer.json()
    assert_is_an_explanation(explanation)
    top_label, top_probability = next(iter(prediction.items()))
    assert explanation["label"] == explanation["explained_label"] == top_label
    assert explanation["probability"] == pytest.approx(top_probability, abs=1e-3)


def test_raw_multipart_and_base64_json_name_a_label_the_same_way(served, samples):
    photo = samples[5].read_bytes()
    raw = explain(served, photo, label="cat").json()
    multipart = served.send(
        "POST",
        f"{served.inference_url}/explanations/{served.model}",
        "inference",
        files={"data": ("photo.jpg", photo, "image/jpeg")},
        data={"label": "cat"},
    ).json()
    document = json.dumps({"data": base64.b64encode(photo).decode(), "label": "cat"}).encode()
    as_json = explain(served, document, headers=served.headers() | {"Content-Type": "application/json"}).json()
    for answer in (raw, multipart, as_json):
        assert answer["explained_label"] == "cat"
        torch.testing.assert_close(torch.tensor(answer["heatmap"]), torch.tensor(raw["heatmap"]), atol=0.02, rtol=0)


def test_a_named_label_changes_the_map(served, samples):
    photo = samples[10].read_bytes()
    maps = {label: explain(served, photo, label=label).json()["heatmap"] for label in ("dog", "spider")}
    difference = (torch.tensor(maps["dog"]) - torch.tensor(maps["spider"])).abs().max()
    assert float(difference) > 0.1


@pytest.mark.parametrize(
    "body, label, reason",
    [(b"not an image", None, "not_image"), (b"", None, "empty"), ("photo", "zebra", "unknown_label")],
)
def test_bad_requests_answer_400_with_the_reason(served, samples, body, label, reason):
    answer = explain(served, samples[0].read_bytes() if body == "photo" else body, label=label)
    assert answer.status_code == 400
    error = answer.json()
    assert error["reason"] == reason and error["type"] == "BadInput"
    if reason == "unknown_label":
        assert "'zebra' is not one of the classes: " in error["message"]


def test_explanations_in_a_busy_batch_answer_each_request(served, samples):
    """Concurrent explanations, predictions and bad inputs: TorchServe batches them together."""
    photos = [path.read_bytes() for path in samples[:8]]
    requests = [(photos[i % 8], i % 3 == 0) for i in range(24)] + [(b"not an image", True)] * 4

    def send(request):
        body, explaining = request
        return explain(served, body) if explaining else served.post(body)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(send, requests))
    for (body, explaining), answer in zip(requests, answers, strict=True):
        if body == b"not an image":
            assert answer.status_code == 400 and answer.json()["reason"] == "not_image"
        elif explaining:
            assert answer.status_code == 200
            assert_is_an_explanation(answer.json())
        else:
            assert answer.status_code == 200 and len(answer.json()) == 5


def test_a_prediction_after_an_explanation_is_the_same_as_before(served, samples):
    photo = samples[20].read_bytes()
    before = served.predict(photo)
    assert explain(served, photo, label="horse").status_code == 200
    assert served.predict(photo) == before


@pytest.fixture(scope="module")
def model_dir_of_tiny_run(tmp_path_factory, tiny_run) -> Path:
    """The tiny run's archive, unpacked as TorchServe unpacks it for a worker."""
    work = tmp_path_factory.mktemp("explain")
    with zipfile.ZipFile(archive_of(tiny_run, work / "animals.mar")) as packed:
        packed.extractall(work / "model")
    return work / "model"


def test_a_batch_mixing_explanations_and_predictions_answers_each_in_kind(model_dir_of_tiny_run, samples):
    """The handler as the worker drives it: TorchServe marks explanation requests with the header explain=True."""
    handler = loaded_handler(model_dir_of_tiny_run, batch_size=4)
    photo = samples[0].read_bytes()
    rows = [{"body": bytearray(photo)}, {"body": bytearray(photo)}, {"body": bytearray(b"x")}]
    rows.append({"body": bytearray(photo), "label": bytearray(b"dog")})
    context = handler_context(model_dir_of_tiny_run, 4)
    context.request_processor = [RequestProcessor({"explain": "True"} if i != 1 else {}) for i in range(4)]
    answers = handler.handle(rows, context)
    assert_is_an_explanation(answers[0])
    assert list(answers[1]) == [answers[0]["label"], *list(answers[1])[1:]] and len(answers[1]) == 5
    assert json.loads(answers[2])["reason"] == "not_image"
    assert answers[3]["explained_label"] == "dog"


def test_each_request_in_a_mixed_batch_gets_its_own_photos_map_and_probability(model_dir_of_tiny_run, samples):
    """Three different photos explained in one batch, one for a named label, beside a prediction: each answer is
    the one its photo gets alone, and a named label's probability is that label's, not the top-1's."""
    handler = loaded_handler(model_dir_of_tiny_run, batch_size=4)
    photos = [samples[index].read_bytes() for index in (3, 40, 120)]
    named = list(run_handler(handler, model_dir_of_tiny_run, [photos[1]])[0][0])[1]  # photo 2's second label

    def explanation_request(photo: bytes, label: str | None = None) -> dict:
        return {"body": bytearray(photo)} | ({"label": bytearray(label.encode())} if label else {})

    alone = []
    for photo, label in zip(photos, (None, named, None), strict=True):
        context = handler_context(model_dir_of_tiny_run, 1)
        context.request_processor = [RequestProcessor({"explain": "True"})]
        alone.append(handler.handle([explanation_request(photo, label)], context)[0])
    context = handler_context(model_dir_of_tiny_run, 4)
    context.request_processor = [RequestProcessor({} if i == 1 else {"explain": "True"}) for i in range(4)]
    rows = [explanation_request(photos[0]), {"body": bytearray(photos[2])}, explanation_request(photos[1], named)]
    batched = handler.handle([*rows, explanation_request(photos[2])], context)

    for together, single in zip([batched[0], batched[2], batched[3]], alone, strict=True):
        assert together["explained_label"] == single["explained_label"] and together["label"] == single["label"]
        assert torch.allclose(torch.tensor(together["heatmap"]), torch.tensor(single["heatmap"]), atol=0.02)
        assert together["explained_probability"] == pytest.approx(single["explained_probability"], abs=1e-3)
    maps = [torch.tensor(answer["heatmap"]) for answer in alone]
    assert all((maps[i] - maps[j]).abs().max() > 0.1 for i, j in ((0, 1), (0, 2), (1, 2))), "photos too alike"
    prediction = run_handler(handler, model_dir_of_tiny_run, [photos[1]])[0][0]
    assert batched[2]["explained_label"] == named and named != batched[2]["label"]
    assert batched[2]["explained_probability"] == pytest.approx(prediction[named], abs=1e-3)
    assert batched[1] == run_handler(handler, model_dir_of_tiny_run, [photos[2]])[0][0]


def test_the_overlay_colours_the_seen_region_from_blue_to_red_and_nothing_else():
    photo = Image.new("RGB", (400, 200), (128, 128, 128))
    heatmap = torch.zeros(14, 14)
    heatmap[:, 7:] = 1.0  # evidence on the right half of what the model saw
    pixels = np.asarray(overlay(photo, heatmap, (0.25, 0.0, 0.75, 1.0))).astype(int)
    assert (pixels[:, :100] == 128).all() and (pixels[:, 300:] == 128).all(), "painted outside the seen region"
    assert pixels[100, 110].tolist() == [64, 64, 128]  # nothing: half dark blue over the grey
    assert pixels[100, 290].tolist() == [192, 96, 64]  # most: half red


def test_manage_explain_writes_the_photo_with_its_own_map_over_it(served, samples, tmp_path, capsys):
    photo = samples[60]
    arguments = ["--config", str(served.config.path), "explain", str(photo), "--label", "dog"]
    assert manage.main([*arguments, "--output", str(tmp_path / "heat.png")]) == 0
    answer = served.explain(photo.read_bytes(), label="dog")
    expected = overlay(decode_image(photo.read_bytes()), torch.tensor(answer["heatmap"]), tuple(answer["region"]))
    written = Image.open(tmp_path / "heat.png")
    assert written.format == "PNG" and written.size == expected.size
    difference = np.abs(np.asarray(written).astype(int) - np.asarray(expected).astype(int))
    assert difference.max() <= 2 and '"explained_label": "dog"' in capsys.readouterr().out


def test_a_batch_of_explanations_is_counted_as_many(model_dir_of_tiny_run, samples, caplog):
    """The worker reports its metrics as log lines the frontend turns into Prometheus counters: one line for the
    batch, counting each of its explanations."""
    handler = loaded_handler(model_dir_of_tiny_run, batch_size=3)
    with caplog.at_level(logging.INFO, logger="ts.metrics.caching_metric"):
        photos = [samples[index].read_bytes() for index in (0, 40, 80)]
        run_handler(handler, model_dir_of_tiny_run, photos, explain=True)
    counted = [record.getMessage() for record in caplog.records]
    counted = [line for line in counted if line.startswith("[METRICS]AnimalsExplanations.")]
    assert len(counted) == 1 and counted[0].split("|")[0].endswith(":3"), counted
