"""One module per ``python -m minitx`` command; each defines ``add_parser(subparsers)`` and ``run(args)``."""
