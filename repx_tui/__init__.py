"""repx-tui: take a RepX Lab to a target and run it there."""

__version__ = "0.1.0"
