"""Manage the animals model's versions and call it, over TorchServe's REST (default) or gRPC APIs.

Address and tokens come from config.properties and TorchServe's key file; --url and --token override them.
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from animals import cli
from animals.errors import UserError
from serving.client import connect
from serving.config import CORRECTIONS_EXPORT, DEFAULT_CONFIG, SAMPLE_IMAGES, read_config
from serving.record import Record
from serving.rollout import retire, rollback, rollout, switch_default
from serving.store import install_archive


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.manage", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    parser.add_argument("--url", help="management API address (default: from the config)")
    parser.add_argument("--token", help="bearer token to send (default: read from TorchServe's key file)")
    parser.add_argument("--grpc", action="store_true", help="use TorchServe's gRPC APIs instead of REST")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("ping", help="is the server healthy?")
    commands.add_parser("list", help="registered versions, their workers, and the default")
    describe = commands.add_parser("describe", help="a version's full description (default: the default version)")
    describe.add_argument("version", nargs="?")
    register = commands.add_parser("register", help="check an archive built by `make archive` and register it")
    register.add_argument("archive", metavar="ARCHIVE|VERSION", help="an archive file, or a version in the model store")
    register.add_argument("--version", help="fail unless the archive is this version")
    register.add_argument("--batch-size", type=int, help="override model-config.yaml's batchSize")
    register.add_argument("--max-batch-delay", type=int, help="override maxBatchDelay (ms)")
    register.add_argument("--workers", type=int, default=1, help="workers to serve it (default: %(default)s)")
    scale = commands.add_parser("scale", help="set a version's minimum and maximum workers")
    scale.add_argument("version", nargs="?")
    scale.add_argument("--min", type=int, required=True, dest="min_workers")
    scale.add_argument("--max", type=int, required=True, dest="max_workers")
    set_default = commands.add_parser("set-default", help="make a version answer /predictions/animals")
    set_default.add_argument("version")
    unregister = commands.add_parser("unregister", help="remove a version, and its archive from the model store")
    unregister.add_argument("version")
    unregister.add_argument("--keep-archive", action="store_true", help="leave the archive in the model store")
    predict = commands.add_parser("predict", help="classify an image")
    predict.add_argument("image", type=Path)
    predict.add_argument("--version", help="ask this version (default: the default version)")
    predict.add_argument("--top-k", type=int, default=5, help="labels to show, at most 5 (default: %(default)s)")
    explain = commands.add_parser("explain", help="where the model looked: a Grad-CAM map of a label (REST only)")
    explain.add_argument("image", type=Path)
    explain.add_argument("--label", help="explain this label (default: the top-1 label)")
    explain.add_argument("--version", help="ask this version (default: the default version)")
    explain.add_argument("--output", type=Path, help="write the photo with the map over it to this PNG")
    roll = commands.add_parser("rollout", help="register a new version, check it on sample images, make it default")
    roll.add_argument("archive", type=Path)
    roll.add_argument("--images", type=Path, default=SAMPLE_IMAGES, help="images to check (default: %(default)s)")
    roll.add_argument(
        "--expected",
        metavar="FILE|folders",
        help='labels to agree with: JSON {"path relative to --images": "label"}, or "folders" for class folder names',
    )
    roll.add_argument("--min-agreement", type=float, default=0.9, help="top-1 agreement needed (default: %(default)s)")
    roll.add_argument("--workers", type=int, default=1, help="workers to serve it (default: %(default)s)")
    roll.add_argument(
        "--check-set",
        type=Path,
        nargs="+",
        help="class folders of photos to score the new and the current version on (default: the exported "
        f"corrections not trained on, {CORRECTIONS_EXPORT / 'check'}, and the sample photos, those that exist)",
    )
    roll.add_argument(
        "--force", action="store_true", help="promote even when the new version scores worse on the check set"
    )
    commands.add_parser("rollback", help="make the previous default version the default again")
    return parser


def print_versions(client, config, default: str) -> None:
    """A line per version: * for the default, its archive, its precision (from the archive's record), its workers."""
    for description in client.describe("all"):
        version = description["modelVersion"]
        workers = ", ".join(worker["status"] for worker in description.get("workers", [])) or "no workers"
        marker = "*" if version == default else " "
        precision = precision_of(config, description["modelUrl"])
        print(
            f"{marker} {description['modelName']} {version:<8} {description['modelUrl']:<24} {precision:<6} {workers}"
        )


def precision_of(config, archive: str) -> str:
    record = Record.read(config.model_store / archive)
    return record.precision if record else "?"


def with_records(config, descriptions: list[dict]) -> list[dict]:
    """TorchServe's descriptions, each with the record of its archive (precision, source, int8 checks)."""
    records = [Record.read(config.model_store / description["modelUrl"]) for description in descriptions]
    return [
        description | {"archiveRecord": asdict(record) if record else None}
        for description, record in zip(descriptions, records, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    config = read_config(args.config)
    client = connect(config, args.grpc, args.token, args.url)
    if args.command == "ping":
        print(client.ping())
    elif args.command == "list":
        print_versions(client, config, client.default_version())
    elif args.command == "describe":
        print(json.dumps(with_records(config, client.describe(args.version)), indent=2))
    elif args.command == "register":
        name, version = install_archive(archive_named(args.archive, config), config, args.version)
        print(f"Registering {name} as {config.model_name} version {version}")
        print(client.register_version(name, version, args.workers, args.batch_size, args.max_batch_delay))
    elif args.command == "scale":
        print(client.scale(args.version, args.min_workers, args.max_workers))
    elif args.command == "set-default":
        print(switch_default(client, config, args.version))
    elif args.command == "unregister":
        print(retire(client, config, args.version, args.keep_archive))
    elif args.command == "predict":
        if not 1 <= args.top_k <= 5:
            raise UserError("--top-k must be between 1 and 5 (the server answers the top 5)")
        answer = client.predict(read_image(args.image), args.version)
        print(json.dumps(dict(list(answer.items())[: args.top_k]), indent=2))
    elif args.command == "explain":
        explain(client, args)
    elif args.command == "rollout":
        check_set = args.check_set or [f for f in (CORRECTIONS_EXPORT / "check", SAMPLE_IMAGES) if f.is_dir()]
        rollout(
            client, config, args.archive, args.images, args.expected, args.min_agreement, args.workers, check_set,
            args.force,
        )  # fmt: skip
    elif args.command == "rollback":
        rollback(client, config)
    return 0


def explain(client, args: argparse.Namespace) -> None:
    """Print the explanation (its map as rows of digits), and write the overlay when asked."""
    image = read_image(args.image)
    answer = client.explain(image, args.version, args.label)
    heatmap = answer["heatmap"]
    print(json.dumps({key: value for key, value in answer.items() if key != "heatmap"}, indent=2))
    print(f"heatmap {len(heatmap)}x{len(heatmap[0])}, 0 (nothing) to 9 (most):")
    for line in heatmap:
        print(" ".join(f"{round(value * 9):d}" for value in line))
    if args.output:
        import torch  # only here: every other command starts without torch's seconds of import

        from animals.explanation import overlay
        from animals.preprocessing import decode_image

        overlay(decode_image(image), torch.tensor(heatmap), tuple(answer["region"])).save(args.output, "PNG")
        print(f"Wrote {args.output}")


def archive_named(name: str, config) -> Path:
    """An archive file as given, else the model store's archive of that version; one line saying where both were
    looked for when neither exists."""
    if Path(name).is_file():
        return Path(name)
    if config.archive(name).is_file():
        return config.archive(name)
    in_store = sorted(path.name for path in config.model_store.glob(f"{config.model_name}-*.mar"))
    raise UserError(
        f"no archive file {name} and no version {name} in the model store {config.model_store} "
        f"(it holds: {', '.join(in_store) or 'nothing'}); build it with `{config.make('archive')} VERSION={name}`"
    )


def read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from error


if __name__ == "__main__":
    cli.run(main)
