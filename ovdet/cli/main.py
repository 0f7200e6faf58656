"""``ovdet`` entry point: subcommand dispatch; user errors become one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import OVDetError
from . import convert, predict, stream, train
from . import eval as eval_command

COMMANDS = [predict, stream, convert, train, eval_command]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ovdet",
        description="Open-vocabulary object detection: boxes for free-text classes.",
        epilog="Run 'ovdet COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ovdet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="ovdet: %(message)s")
    try:
        return int(args.func(args) or 0)
    except OVDetError as e:
        print(f"ovdet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ovdet {args.command}: interrupted", file=sys.stderr)
        return 130
