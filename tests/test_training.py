"""The real training loop on generated data, the Animals-10 split, resuming, reports and the CLI's errors."""

import json
import shutil
from pathlib import Path

import pytest

from animals import cli
from animals.folders import image_files
from animals.labels import ANIMALS
from tests.shapes import write_shapes
from tests.support import SAMPLE_DIR, SHAPES_EPOCHS, SMALL_VGG
from training import evaluate, predict, train
from training.data import make_split, photos_per_folder
from training.evaluate import evaluate_run


def run_training(*arguments: str) -> None:
    assert train.main([*SMALL_VGG, *arguments]) == 0


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_small_vgg_from_scratch_learns_the_generated_set(shapes_run):
    result = metrics(shapes_run)
    assert result["test"]["accuracy"] >= 0.9
    assert len(result["history"]) == SHAPES_EPOCHS
    assert result["best_valid_accuracy"] == max(epoch["valid_accuracy"] for epoch in result["history"])


def test_run_folder_holds_everything_serving_and_review_need(shapes_run):
    for name in ("model.pt", "model.json", "index_to_name.json", "split.json", "metrics.json", "checkpoint.pt"):
        assert (shapes_run / name).is_file(), name
    for plot in ("confusion_matrix.png", "training_curves.png"):
        assert (shapes_run / plot).read_bytes().startswith(b"\x89PNG")
    result = metrics(shapes_run)
    assert set(result["test"]["per_class"]["class_0"]) == {"precision", "recall", "f1", "support"}
    assert len(result["split_sha256"]) == 64
    assert result["arguments"]["epochs"] == SHAPES_EPOCHS and result["unreadable_files"] == []


def test_evaluate_reproduces_the_test_metrics(shapes_run):
    summary, _ = evaluate_run(shapes_run)
    recorded = metrics(shapes_run)["test"]
    assert summary["accuracy"] == recorded["accuracy"]
    assert summary["confusion_matrix"] == recorded["confusion_matrix"]
    assert summary["loss"] == pytest.approx(recorded["loss"], abs=1e-3)


def test_cached_features_reach_the_normal_frozen_accuracy(tmp_path, shapes_run):
    """Both start from the scratch run's features, frozen, on fresh shapes with 60 validation images."""
    shapes = write_shapes(tmp_path / "shapes", per_class=60, seed=1)
    common = [
        "--data-dir",
        str(shapes),
        "--weights",
        str(shapes_run / "model.pt"),
        "--epochs",
        "3",
        "--augment",
        "whole",
    ]
    run_training(*common, "--output", str(tmp_path / "normal"))
    run_training(*common, "--cache-features", "--output", str(tmp_path / "cached"))
    # The same answers but one, and both losses near zero: the cached head trains without the flips, so its loss is
    # not the normal run's to the decimal (0.060 against 0.027 in one run on 2 cores).
    normal, cached = (metrics(tmp_path / name) for name in ("normal", "cached"))

    def right(run: dict) -> int:  # validation images answered right in the last epoch (the accuracy is rounded)
        return round(run["history"][-1]["valid_accuracy"] * run["split_sizes"]["valid"])

    assert right(cached) >= right(normal) - 1
    assert cached["history"][-1]["valid_loss"] <= max(2 * normal["history"][-1]["valid_loss"], 0.1)


def test_resume_continues_a_stopped_run(tmp_path, few_shapes, capsys):
    run = tmp_path / "resumed"
    run_training("--data-dir", str(few_shapes), "--weights", "none", "--epochs", "1", "--output", str(run))
    assert train.main(["--resume", str(run), "--epochs", "2"]) == 0
    assert "Resuming after epoch 1" in capsys.readouterr().out
    assert [epoch["epoch"] for epoch in metrics(run)["history"]] == [1, 2]


def test_corrupt_files_are_skipped_counted_and_listed(tmp_path, few_shapes):
    data = tmp_path / "data"
    shutil.copytree(few_shapes, data)
    for name in ("000.png", "001.png"):
        (data / "class_0" / name).write_bytes(b"not a png at all")
    run = tmp_path / "run"
    run_training("--data-dir", str(data), "--weights", "none", "--epochs", "1", "--output", str(run))
    assert sorted(metrics(run)["unreadable_files"]) == ["class_0/000.png", "class_0/001.png"]


def test_animals10_folders_load_with_english_labels_and_a_stratified_split():
    split = make_split(SAMPLE_DIR, seed=0)
    assert split.class_names == sorted(ANIMALS)
    sizes = {part: len(items) for part, items in split.parts.items()}
    assert sizes == {"train": 120, "valid": 20, "test": 20}
    for part, items in split.parts.items():
        per_class = [sum(1 for _, label in items if label == c) for c in range(len(ANIMALS))]
        assert len(set(per_class)) == 1, part
    paths = [path for items in split.parts.values() for path, _ in items]
    assert len(paths) == len(set(paths)) == 160


@pytest.mark.parametrize(
    ("per_class", "sizes"), [(16, (12, 2, 2)), (25, (19, 3, 3)), (7, (5, 1, 1)), (3, (1, 1, 1)), (2, (2, 0, 0))]
)
def test_each_class_splits_into_ten_percent_valid_and_test_rounded_half_up(tmp_path, per_class, sizes):
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for index in range(per_class):
            (data / label / f"{index}.png").write_bytes(b"")
    split = make_split(data)
    assert tuple(len(split.parts[part]) for part in ("train", "valid", "test")) == tuple(2 * size for size in sizes)


def test_several_data_dirs_split_each_and_join_with_all_their_classes(tmp_path):
    extra = tmp_path / "corrections" / "train"
    for label, count in (("sheep", 7), ("unicorn", 2)):
        (extra / label).mkdir(parents=True)
        for index in range(count):
            shutil.copyfile(next((SAMPLE_DIR / "pecora").iterdir()), extra / label / f"{index}.jpg")
    split = make_split([SAMPLE_DIR, extra], seed=0)
    assert split.class_names == sorted([*ANIMALS, "unicorn"])
    items = [(path, label) for part in split.parts.values() for path, label in part]
    assert all((split.root / path).is_file() for path, _ in items) and len(items) == 160 + 9
    from_extra = [split.class_names[label] for path, label in items if "corrections" in path]
    assert sorted(from_extra) == ["sheep"] * 7 + ["unicorn"] * 2
    assert photos_per_folder(split, [SAMPLE_DIR, extra]) == {
        str(SAMPLE_DIR): dict.fromkeys(sorted(ANIMALS), 16), str(extra): {"sheep": 7, "unicorn": 2}
    }  # fmt: skip
    sizes = {part: sum(1 for path, _ in items if "corrections" in path) for part, items in split.parts.items()}
    assert sizes == {"train": 5 + 2, "valid": 1, "test": 1}  # each folder split on its own: 7 is 5/1/1, 2 is 2/0/0


def test_a_run_on_two_data_dirs_reports_the_photos_each_gave(tmp_path, few_shapes):
    extra = write_shapes(tmp_path / "extra", per_class=3, classes=2, seed=5)
    run = tmp_path / "run"
    run_training("--data-dir", str(few_shapes), str(extra), "--weights", "none", "--epochs", "1", "--output", str(run))
    counts = metrics(run)["photos_per_data_dir"]
    assert counts[str(extra)] == {"class_0": 3, "class_1": 3}
    assert counts[str(few_shapes)] == {folder.name: len(image_files(folder)) for folder in sorted(few_shapes.iterdir())
                                       if folder.is_dir()}  # fmt: skip


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    assert make_split(SAMPLE_DIR, seed=0).to_json() == make_split(SAMPLE_DIR, seed=0).to_json()
    assert make_split(SAMPLE_DIR, seed=0).to_json() != make_split(SAMPLE_DIR, seed=1).to_json()


def test_animals10_download_layout_and_presplit_folders_are_recognised(tmp_path, shapes):
    (tmp_path / "download").mkdir()
    (tmp_path / "download" / "raw-img").symlink_to(SAMPLE_DIR)
    assert make_split(tmp_path / "download").class_names == sorted(ANIMALS)
    for part in ("train", "val", "test"):
        (tmp_path / "presplit" / part).mkdir(parents=True)
        for label in ("class_0", "class_1"):
            (tmp_path / "presplit" / part / label).symlink_to(shapes / label)
    split = make_split(tmp_path / "presplit")
    assert split.class_names == ["class_0", "class_1"]
    assert {part: len(items) for part, items in split.parts.items()} == {"train": 100, "valid": 100, "test": 100}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "has no class folders"),
        (lambda root: (root / "cat").mkdir(parents=True), "with no images in"),
    ],
    ids=["missing", "empty", "empty-class"],
)
def test_unusable_data_dirs_fail_with_one_line(tmp_path, capsys, setup, message):
    data = tmp_path / "data"
    setup(data)
    assert_fails_with_one_line(["--data-dir", str(data), "--output", str(tmp_path / "run")], message, capsys)


def test_run_without_weights_fails_with_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    for command, extra in ((predict.main, [str(tmp_path / "photo.jpg")]), (evaluate.main, [])):
        with pytest.raises(SystemExit) as exited:
            cli.run(command, ["--run", str(tmp_path / "run"), *extra])
        assert exited.value.code == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "lacks model.pt" in error


def assert_fails_with_one_line(arguments: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.run(train.main, [*SMALL_VGG, "--weights", "none", *arguments])
    assert exited.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and message in error


def test_training_that_cannot_get_its_weights_leaves_no_run_folder(tmp_path, shapes, capsys):
    """Weights that cannot be had (a missing file here; offline ImageNet weights alike) stop the run before its folder
    is written, so that no half-written run is picked up later as the newest."""
    run = tmp_path / "run"
    arguments = ["--data-dir", str(shapes), "--output", str(run), "--weights", str(tmp_path / "missing.pth")]
    with pytest.raises(SystemExit) as exited:
        cli.run(train.main, [*SMALL_VGG, *arguments])
    assert exited.value.code == 1 and "missing.pth" in capsys.readouterr().err
    assert not run.exists()
