"""`python -m launch <command>`: argument parsing; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fleetcast.cli import Parser
from launch import deploy, forecast, invoke, pipeline, process, status, teardown, train, upload
from launch.common import LaunchError

COMMAND_MODULES = (upload, process, train, forecast, pipeline, deploy, invoke, status, teardown)


def build_parser() -> argparse.ArgumentParser:
    # A Parser's help shows every option's default, and so do the subcommands it creates.
    parser = Parser(
        prog="python -m launch",
        description="Run fleetcast on SageMaker: upload -> process -> train -> deploy -> invoke -> teardown.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return int(args.run(args) or 0)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "request")
        print(f"AWS refused {operation}: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
