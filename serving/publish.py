"""Publishing a model into the store: the version that holds it, built when the store does not hold it yet, and the
version `make serve` serves."""

from pathlib import Path

from animals.errors import UserError
from serving import int8, snapshots
from serving.archive import ModelSource, Staged, build_archive, choose_source, staged
from serving.config import ServerConfig
from serving.store import next_free_version, stored, taken_versions


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
        build_archive(archive, stage, config.model_name, label, compiled_and_checked(stage, min_agreement))
        return label, archive


def compiled_and_checked(stage: Staged, minimum: float) -> dict | None:
    """An int8 build compiled ahead of time (once here, rather than in every worker), and its agreement with fp32 on
    held-out images, refused in one line when below `minimum`."""
    if stage.int8_images is None:
        return None
    int8.compile_ahead(stage.folder)
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
