"""The ``runpoint`` command line (typer + rich)."""
