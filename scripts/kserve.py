"""Run deploy/kserve/config.properties on this machine as KServe's PyTorch runtime runs it (on loopback), to try the
KServe v1 or v2 protocol without a cluster. Ctrl-C stops it."""

import argparse
import base64
import json
from pathlib import Path

from animals import cli
from animals.errors import UserError
from animals.run import ARTIFACTS_DIR
from serving import kserve
from serving.config import DEFAULT_CONFIG, SAMPLE_IMAGES, read_config

PATHS = {"v1": "/v1/models/animals:predict", "v2": "/v2/models/animals/infer"}


def newest_archive(config_path: Path) -> Path:
    config = read_config(config_path)
    archives = sorted(config.model_store.glob(f"{config.model_name}-*.mar"), key=lambda path: path.stat().st_mtime)
    if not archives:
        raise UserError(f"no archive in {config.model_store}: build one with `make archive` (or `make serve`) first")
    return archives[-1]


def example_request(protocol: str, photo: Path, path: Path) -> Path:
    """A request body for `protocol` holding one sample photo, written to `path` for curl's -d @file."""
    data = base64.b64encode(photo.read_bytes()).decode()
    if protocol == "v1":
        body = {"instances": [{"data": data}]}
    else:
        body = {"id": "example", "inputs": [{"name": "data", "shape": [1], "datatype": "BYTES", "data": [data]}]}
    path.write_text(json.dumps(body))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.kserve", description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(kserve.ENVELOPES), default="v1", help="(default: %(default)s)")
    parser.add_argument("--archive", type=Path, help="the archive to serve (default: the model store's newest)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="whose model store (default: %(default)s)")
    args = parser.parse_args(argv)
    archive = args.archive or newest_archive(args.config)
    home = ARTIFACTS_DIR / "kserve-local"
    config = kserve.local_config(home, archive)
    print(
        f"Starting {kserve.KSERVE_CONFIG.name} of deploy/kserve with {archive.name} as animals.mar, protocol "
        f"{args.protocol} (TS_SERVICE_ENVELOPE={kserve.ENVELOPES[args.protocol]}); logs in {config.log_dir}"
    )
    with (home / "torchserve.out").open("w") as output:
        process = kserve.start(config, args.protocol, output)
        try:
            kserve.wait_until_ready(config, process)
            url = config.inference_url + PATHS[args.protocol]
            print(f"Ready at {config.inference_url} (no token: KServe authenticates at its ingress). Try it:")
            photos = sorted(SAMPLE_IMAGES.glob("*/*.jp*g"))
            if photos:
                body = example_request(args.protocol, photos[0], home / f"request-{args.protocol}.json")
                print(f'  curl -H "Content-Type: application/json" -d @{body} {url}')
            else:
                print(f"  POST a {args.protocol} JSON body of base64 images to {url} (README: Deployment)")
            print("Ctrl-C stops it.")
            process.wait()
        except KeyboardInterrupt:
            print("Stopping")
        finally:
            kserve.stop(process)
    return 0


if __name__ == "__main__":
    cli.run(main)
