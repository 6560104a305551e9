"""Build the model archive (animals.mar) with torch-model-archiver, from a trained run or the ImageNet default."""

import argparse
from pathlib import Path

from animals import cli
from animals.acceleration import PRECISIONS
from serving.archive import DEFAULT_VERSION, build_archive, choose_source
from serving.config import DEFAULT_CONFIG, read_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.archive", description=__doc__)
    parser.add_argument("--run", type=Path, help="a training run folder (default: the newest under artifacts/)")
    parser.add_argument(
        "--imagenet", action="store_true", help="build the ImageNet zero-shot default even if runs exist"
    )
    parser.add_argument("--version", default=DEFAULT_VERSION, help="the archive's model version (default: %(default)s)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config naming the model store")
    parser.add_argument("--output", type=Path, help="archive path (default: the config's model store/animals.mar)")
    parser.add_argument("--precision", choices=PRECISIONS, help="override model-config.yaml's handler precision")
    args = parser.parse_args(argv)
    config = read_config(args.config)
    source = choose_source(args.run, args.imagenet)
    build_archive(args.output or config.archive, source, config.model_name, args.version, args.precision)
    return 0


if __name__ == "__main__":
    cli.run(main)
