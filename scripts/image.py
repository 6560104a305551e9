"""Build the container image with a model in it: a training run, an archive of the model store, or the ImageNet
zero-shot model (VGG16_WEIGHTS= offline). Makes the base image from Debian's archive first when it is missing."""

import argparse
from pathlib import Path

from animals import cli
from serving.image import IMAGE_NAME, ImageRequest, build_image, describe_model, image_size_bytes
from serving.store import verify_archive


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.image", description=__doc__)
    parser.add_argument("--tag", help=f"the image's name (default: {IMAGE_NAME}:VERSION)")
    parser.add_argument("--version", help="the version label the image serves (default: the archive's, else 1.0)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run", type=Path, help="a training run folder (artifacts/RUN)")
    model.add_argument("--archive", type=Path, help="an archive built by `make archive` (its record beside it)")
    parser.add_argument("--base-image", help="Debian bookworm with python3-venv (default: the Dockerfile's)")
    parser.add_argument("--torch-index", default="", help="an extra index for torch wheels (default: PyPI alone)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    version = args.version or (verify_archive(args.archive).version if args.archive else "1.0")
    tag = args.tag or f"{IMAGE_NAME}:{version}"
    request = ImageRequest(tag, version, args.base_image, args.torch_index, args.run, args.archive)
    build_image(request)
    print(f"Built {tag} ({image_size_bytes(tag) / 1e9:.1f} GB): version {version}, {describe_model(request)}")
    print("Run it (inference on loopback, the token from inside):")
    print(f"  docker run -d --name animals -p 127.0.0.1:8080:8080 -p 127.0.0.1:7070:7070 {tag}")
    print("  docker exec animals python -m scripts.server --config serve/config.properties token")
    return 0


if __name__ == "__main__":
    cli.run(main)
