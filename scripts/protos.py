"""Generate the gRPC Python stubs from the .proto files inside the installed TorchServe's jar (run at set-up)."""

import argparse
from pathlib import Path

from animals import cli
from serving.protos import JAR, generate, site_packages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.protos", description=__doc__)
    parser.add_argument("--destination", type=Path, default=site_packages(), help="(default: %(default)s)")
    args = parser.parse_args(argv)
    package = generate(args.destination)
    print(f"Generated gRPC stubs in {package} from {JAR.name}")
    return 0


if __name__ == "__main__":
    cli.run(main)
