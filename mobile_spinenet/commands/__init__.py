"""The subcommands of ``mobile-spinenet``, one module per group; each exposes ``add_*_parser(sub)``."""
