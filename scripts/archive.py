"""Build a model archive into the model store (model_store/animals-VERSION.mar), from a trained run or the ImageNet
default. The same inputs give the same archive, and a version label never names two different models."""

import argparse
from pathlib import Path

from animals import cli
from animals.inference_settings import PRECISIONS
from serving.archive import choose_source, fit_compiled_program
from serving.config import DEFAULT_CONFIG, read_config
from serving.int8 import MIN_AGREEMENT
from serving.publish import publish
from serving.server import registered_versions
from serving.store import install_archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.archive", description=__doc__)
    parser.add_argument("--run", type=Path, help="a training run folder (default: the newest under artifacts/)")
    parser.add_argument(
        "--imagenet", action="store_true", help="build the ImageNet zero-shot default even if runs exist"
    )
    parser.add_argument(
        "--version", help="the version label (default: the one already naming this model, else the next free)"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config naming the model store")
    parser.add_argument("--output", type=Path, help="write the archive here instead of into the model store")
    parser.add_argument(
        "--install",
        type=Path,
        metavar="ARCHIVE",
        help="put an archive built elsewhere into the model store (checked; an int8 program compiled for another "
        "machine is compiled again for this one)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, help="override model-config.yaml's handler precision")
    parser.add_argument(
        "--new-label", action="store_true", help="build a model the store already holds under another label too"
    )
    parser.add_argument("--calibration", type=Path, help="int8: a folder of images to calibrate on (see README)")
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        help="int8: top-1 agreement with fp32 needed (%(default)s)",
    )
    args = parser.parse_args(argv)
    config = read_config(args.config)
    if args.install:
        name, version = install_archive(args.install, config, args.version)
        fit_compiled_program(config.model_store / name)
        print(f"Version {version}: {config.model_store / name}")
        return 0
    handler = {"precision": args.precision} if args.precision else None
    source = choose_source(args.run, args.imagenet)
    registered = registered_versions(config)
    version, archive = publish(
        config, source, args.version, handler, args.output, registered, args.calibration, args.min_agreement,
        args.new_label,
    )  # fmt: skip
    print(f"Version {version}: {archive}")
    return 0


if __name__ == "__main__":
    cli.run(main)
