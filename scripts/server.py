"""Start, stop and inspect the TorchServe that serves the animals model (what `make serve` and `make stop` run)."""

import argparse
from pathlib import Path

from animals import cli
from animals.errors import UserError
from animals.inference_settings import PRECISIONS
from serving import server
from serving.config import DEFAULT_CONFIG, ServerConfig, check_named_files, read_config, read_keys


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.server", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TorchServe config (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    starting = commands.add_parser("start", help="build the archive if needed, start TorchServe, wait until READY")
    starting.add_argument("--run", type=Path, help="serve this training run as the default version")
    starting.add_argument("--imagenet", action="store_true", help="serve the ImageNet zero-shot model as the default")
    starting.add_argument("--precision", choices=PRECISIONS, help="serve the model in this precision (e.g. int8)")
    starting.add_argument("--timeout", type=float, default=server.READY_TIMEOUT_S, help="seconds to wait for READY")
    starting.add_argument("--foreground", action="store_true", help="run TorchServe in the foreground (containers)")
    starting.add_argument("--no-build", action="store_true", help="serve the model store as it is")
    starting.add_argument("--bind", metavar="HOST", help="listen on HOST instead of the config's addresses")
    starting.add_argument("--workers", type=int, help="workers of the default version (default: the archive's)")
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
        return start_serving(config, args)
    elif args.command == "health":
        print(server.health(config))
    elif args.command == "stop":
        server.stop(config)
    elif args.command == "status":
        print(server.status(config))
    elif args.command == "token":
        print(read_keys(config)[args.kind])
    return 0


def start_serving(config: ServerConfig, args: argparse.Namespace) -> int:
    """Start TorchServe (in the foreground: until it is stopped); the command's exit status."""
    if args.no_build and (args.run or args.imagenet or args.precision):
        raise UserError("--no-build serves the model store as it is: drop --run/--imagenet/--precision or --no-build")
    pid = server.running_pid(config)
    if pid is not None and (args.run or args.imagenet or args.precision):
        raise UserError(
            f"TorchServe is already running (pid {pid}) and this start would serve another model: roll it out "
            f"without a stop (`python -m scripts.manage rollout ARCHIVE --images PHOTOS`, README: Model versions), "
            f"or `{config.make('stop')}` first"
        )
    if pid is not None:
        server.start(config)  # only says that TorchServe already runs: a running server is left as it is
        return 0
    check_named_files(config)
    from serving.publish import version_to_serve  # torch: only when starting, not for health or status

    default = version_to_serve(config, args.run, args.imagenet, not args.no_build, args.precision)
    if args.foreground:
        return server.run_in_foreground(config, default, args.bind, args.workers)
    server.start(config, default, args.timeout, args.bind, args.workers)
    print(server.summary(config))
    return 0


if __name__ == "__main__":
    cli.run(main)
