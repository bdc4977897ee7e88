"""Extra CLI subcommands, one module each, exporting ``add_parser(subparsers)`` and ``run(args) -> int``."""

COMMAND_MODULES = ("inspect", "compare", "bench")
