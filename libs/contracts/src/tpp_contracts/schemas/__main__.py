"""Command line: ``python -m tpp_contracts.schemas write|check``."""

from __future__ import annotations

import argparse
import sys

from tpp_contracts.schemas import SchemaIncompatibleError, check, write


def main(argv: list[str] | None = None) -> int:
    """Run ``write`` or ``check``; the exit status is 0 when all is well, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m tpp_contracts.schemas")
    commands = parser.add_subparsers(dest="command", required=True)
    write_parser = commands.add_parser("write", help="commit the models' JSON Schemas")
    write_parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="also write incompatible changes and delete schemas of removed event types",
    )
    commands.add_parser("check", help="fail unless the committed schemas match the models")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = check()
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s)" if problems else "schemas are up to date")
        return 1 if problems else 0

    try:
        result = write(allow_breaking=args.allow_breaking)
    except SchemaIncompatibleError as error:
        for problem in error.problems:
            print(problem)
        print(
            "refusing to write breaking changes: publish a new event type (V2) beside the old "
            "one, or pass --allow-breaking once its consumers have moved"
        )
        return 1
    for name in result.written:
        print(f"wrote {name}.json")
    for name in result.removed:
        print(f"removed {name}.json")
    if not result.written and not result.removed:
        print("schemas are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
