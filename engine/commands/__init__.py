"""One module per CLI subcommand: ``NAME``, ``HELP``, ``add_arguments``, ``run``."""
