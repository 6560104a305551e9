"""Start, stop and inspect the TorchServe that serves the animals model (what `make serve` and `make stop` run)."""

import argparse
from pathlib import Path

from animals import cli
from serving import server
from serving.config import DEFAULT_CONFIG, read_config, read_keys


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.server", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="build the archive if needed, start TorchServe, wait until READY")
    start.add_argument("--run", type=Path, help="serve this training run (default: newest run, else ImageNet)")
    start.add_argument("--imagenet", action="store_true", help="serve the ImageNet zero-shot model even if runs exist")
    start.add_argument("--timeout", type=float, default=server.READY_TIMEOUT_S, help="seconds to wait for READY")
    start.add_argument("--foreground", action="store_true", help="run TorchServe in the foreground (containers)")
    start.add_argument("--no-build", action="store_true", help="serve the model store as it is")
    start.add_argument("--bind", metavar="HOST", help="listen on HOST instead of the config's addresses")
    commands.add_parser("stop", help="stop TorchServe")
    commands.add_parser("health", help="exit 0 when /ping answers Healthy")
    commands.add_parser("status", help="say whether TorchServe runs and what its workers are doing")
    token = commands.add_parser("token", help="print the current token")
    token.add_argument("--kind", choices=("inference", "management", "API"), default="inference")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    config = read_config(args.config)
    if args.command == "start":
        if server.running_pid(config) is None and not args.no_build:
            from serving.archive import choose_source, ensure_archive  # torch: only when building, not for health

            source = choose_source(args.run, args.imagenet)
            ensure_archive(config, source)
            print(f"Serving {source.description} as {config.archive.name}")
        if args.foreground:
            server.run_in_foreground(config, args.bind)
        if server.start(config, args.timeout, args.bind):
            print(server.examples(config))
    elif args.command == "health":
        print(server.health(config))
    elif args.command == "stop":
        server.stop(config)
    elif args.command == "status":
        print(server.status(config))
    elif args.command == "token":
        print(read_keys(config)[args.kind])
    return 0


if __name__ == "__main__":
    cli.run(main)
