"""One module per ``python -m minitx`` command; each defines ``add_parser(subparsers)`` and ``run(args)``."""

import argparse

import torch


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` for every minitx command and script: the description keeps its line breaks (so its example
    commands stay one per line, ready to copy), and each flag shows its default unless it has none (None), is
    a switch (``--resume``: "default: False" says nothing) or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.nargs == 0 or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's CPU threads; None keeps torch's own choice."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
