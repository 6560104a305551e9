"""The model store's versions: one archive per version (model_store/animals-1.0.mar) with its record, a label that
names one model forever, and the next free label."""

import json
import re
import shutil
import zipfile
from pathlib import Path

import yaml

from animals import quantization
from animals.acceleration import InferenceSettings
from animals.errors import UserError
from serving import int8, snapshots
from serving.archive import (
    MANIFEST,
    ModelSource,
    Record,
    Staged,
    build_archive,
    choose_source,
    record_path,
    sha256_of,
    staged,
)
from serving.config import ServerConfig

FIRST_VERSION = "1.0"


def archive_version(archive: Path) -> str:
    """The model version written in the archive's manifest."""
    return _read_archive(archive, MANIFEST, json.loads)["model"]["modelVersion"]


def verify_archive(archive: Path) -> Record:
    """The archive's record, after checking its SHA-256 is the one recorded when serving.archive built it.

    An archive executes its handler's code when TorchServe loads it: only archives this project built are registered.
    """
    record = Record.read(archive)
    if record is None:
        raise UserError(f"{archive} has no build record ({record_path(archive).name}): build it with `make archive`")
    if sha256_of(archive) != record.sha256:
        raise UserError(f"{archive} does not match the SHA-256 recorded when it was built: refusing to register it")
    return record


def stored(config: ServerConfig) -> dict[str, Record]:
    """The versions in the model store, by label, with their records."""
    records = (Record.read(path) for path in sorted(config.model_store.glob(f"{config.model_name}-*.mar")))
    return {record.version: record for record in records if record is not None}


def taken_versions(config: ServerConfig, registered: set[str] = frozenset()) -> set[str]:
    """Labels that already name a model: in the store, in TorchServe's last snapshot, or registered now."""
    snapshot = snapshots.last_snapshot(config)
    return set(stored(config)) | set(snapshots.versions(snapshot, config.model_name)) | set(registered)


def next_free_version(taken: set[str]) -> str:
    """After the highest numeric label, its last number plus one: 1.0 -> 1.1; 1.0 when nothing is taken."""
    numeric = [tuple(int(part) for part in label.split(".")) for label in taken if re.fullmatch(r"\d+(\.\d+)*", label)]
    if not numeric:
        return FIRST_VERSION
    highest = max(numeric)
    return ".".join(map(str, (*highest[:-1], highest[-1] + 1))) if len(highest) > 1 else f"{highest[0]}.1"


def publish(
    config: ServerConfig,
    source: ModelSource,
    version: str | None = None,
    handler: dict | None = None,
    output: Path | None = None,
    registered: set[str] = frozenset(),
    calibration: Path | None = None,
    min_agreement: float = int8.MIN_AGREEMENT,
    new_label: bool = False,
) -> tuple[str, Path]:
    """The version and archive that hold `source`: one already in the store with the same content, else a new build
    (into the store, or to `output`). A new label for a model the store already holds is refused, naming the label
    that holds it, unless `new_label`; a label that names another model is refused, naming the next free one; so is
    an int8 build whose top-1 agreement with fp32 is below `min_agreement`."""
    with staged(source, handler, calibration) as stage:
        same = {label for label, record in stored(config).items() if record.content == stage.content}
        if output is None and (version in same or (version is None and same)):
            label = version or max(same, key=_order)
            print(f"{config.archive(label)} is up to date: version {label} is {source.description}")
            return label, config.archive(label)
        if same and version not in same and not new_label:
            held = max(same, key=_order)
            raise UserError(
                f"the model store already holds this model as version {held} ({source.description}): serve or roll "
                f"out {held}, or build it under another label all the same with FORCE=1 (--new-label)"
            )
        taken = taken_versions(config, registered)
        if version in taken and version not in same:
            raise UserError(
                f"version {version} already names another model: build this one as VERSION={next_free_version(taken)}"
            )
        label = version or next_free_version(taken)
        archive = Path(output) if output else config.archive(label)
        if output and archive.resolve().parent == config.model_store.resolve():
            raise UserError(f"OUTPUT={output} is inside the model store, whose names `make archive` keeps: drop OUTPUT")
        build_archive(archive, stage, config.model_name, label, checked_agreement(stage, min_agreement))
        return label, archive


def checked_agreement(stage: Staged, minimum: float) -> dict | None:
    """An int8 build's agreement with fp32 on held-out images, refused in one line when below `minimum`."""
    if stage.int8_images is None:
        return None
    figure = int8.agreement(stage.folder, stage.weights, stage.int8_images)
    images = len(stage.int8_images.held_out)
    print(f"  int8 top-1 agreement with fp32: {figure:.1%} on {images} held-out images")
    if figure < minimum:
        raise UserError(
            f"int8 agrees with fp32 on {figure:.1%} of {images} held-out images, below the required {minimum:.0%}: "
            f"not built (MIN_AGREEMENT={figure:.2f} builds it anyway)"
        )
    return {"top1_with_fp32": round(figure, 4), "images": images}


def version_to_serve(
    config: ServerConfig, run: Path | None, imagenet: bool, build: bool = True, precision: str | None = None
) -> str | None:
    """The version `make serve` makes the default.

    RUN (or IMAGENET): that model's own version, built when the store does not hold it yet; with `precision` (e.g.
    int8), that model in that precision, a version of its own too (without RUN or IMAGENET: the newest trained run,
    else the ImageNet default). Neither: None when TorchServe has served before, so that its last snapshot's default
    comes back unchanged; when nothing has been served yet, the newest trained run, else the ImageNet default (not
    building: the store's highest version).
    """
    snapshot = snapshots.last_snapshot(config)
    if run is None and not imagenet and precision is None and snapshot is not None:
        print("Serving what TorchServe served last: the versions of its last snapshot, and their default")
        return None
    if not build:
        in_store = stored(config)
        if not in_store:
            raise UserError(f"nothing to serve: {config.model_store} holds no archive; build one with `make archive`")
        version = max(in_store, key=_order)
        print(f"Nothing served yet: serving the model store's highest version, {version} ({in_store[version].source})")
        return version
    source = choose_source(run, imagenet)
    version, _ = publish(config, source, handler={"precision": precision} if precision else None)
    first = "" if run is not None or imagenet else "Nothing served yet, so the newest trained run, else ImageNet: "
    print(f"{first}serving {source.description} as version {version}")
    return version


def _order(label: str) -> tuple:
    return tuple(int(part) if part.isdigit() else -1 for part in label.split("."))


def install_archive(archive: Path, config: ServerConfig, expected_version: str | None = None) -> tuple[str, str]:
    """Check the archive and put it in the model store as MODEL-VERSION.mar; return (name in the store, version)."""
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(f"no archive at {archive}")
    record = verify_archive(archive)
    version = archive_version(archive)
    if expected_version and expected_version != version:
        raise UserError(f"{archive} is version {version}, not {expected_version}: rebuild it with VERSION=...")
    target = config.archive(version)
    if archive.resolve() == target.resolve():
        return target.name, version
    existing = Record.read(target)
    if existing is not None and existing.content != record.content:
        taken = taken_versions(config)
        raise UserError(
            f"version {version} already names another model in {config.model_store}: rebuild this one with "
            f"VERSION={next_free_version(taken)}"
        )
    shutil.copy2(archive, target)
    shutil.copy2(record_path(archive), record_path(target))
    return target.name, version


def remove_archive(config: ServerConfig, name: str) -> Path | None:
    """Delete an archive (and its record) from the model store; the path removed, or None when it was not there."""
    archive = config.model_store / name
    if not archive.is_file():
        return None
    archive.unlink()
    record_path(archive).unlink(missing_ok=True)
    return archive


def extract_model(archive: Path, destination: Path) -> Path:
    """The archive's model files (model.pt, model.json, index_to_name.json, and an int8 archive's program), laid out
    as a training run folder."""
    with zipfile.ZipFile(archive) as packed:
        for name in ("model.pt", "model.json", "index_to_name.json", quantization.PROGRAM):
            if name in packed.namelist():
                packed.extract(name, destination)
    return destination


def archive_settings(archive: Path) -> InferenceSettings:
    """The handler's inference settings packed in the archive's model-config.yaml."""
    return InferenceSettings.from_config(_read_archive(archive, "model-config.yaml", yaml.safe_load).get("handler", {}))


def archive_labels(archive: Path) -> set[str]:
    """The class names the archive's model answers with."""
    return set(_read_archive(archive, "index_to_name.json", json.loads).values())


def _read_archive(archive: Path, name: str, parse):
    try:
        with zipfile.ZipFile(archive) as packed:
            return parse(packed.read(name))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"{archive} is not a model archive (.mar) built by torch-model-archiver") from error
