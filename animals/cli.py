"""The edge of every command: user errors become one clear line and a non-zero exit, never a traceback."""

import sys
from collections.abc import Callable

from animals.errors import UserError


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's main and exit with its status; print UserErrors as one line on stderr."""
    try:
        status = main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
