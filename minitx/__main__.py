"""Command line: ``python -m minitx COMMAND ...`` (also installed as ``minitx``).

Each command lives in its own module under `minitx.cli`, which adds its sub-parser and runs it.
"""

import argparse
import importlib
import os
import sys

COMMANDS = {
    "demo": "minitx.cli.demo",
    "classify": "minitx.cli.classify",
    "tune": "minitx.cli.tune",
    "lm": "minitx.cli.lm",
    "sample": "minitx.cli.sample",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minitx", description="minitx: train and inspect small transformers.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {name: importlib.import_module(module_name) for name, module_name in COMMANDS.items()}
    for module in modules.values():
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    for name in ("out", "path", "data", "checkpoint"):     # the shell leaves the ~ of --out=~/runs as it is
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("~"):
            setattr(args, name, os.path.expanduser(value))
    try:
        return modules[args.command].run(args) or 0
    except (OSError, ValueError, RuntimeError) as error:      # OSError: missing files, a file where a folder goes
        print(f"minitx {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:                   # Ctrl-C: what was saved, not a traceback
        print(f"minitx {args.command}: interrupted" + (f": {interrupt}" if str(interrupt) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
