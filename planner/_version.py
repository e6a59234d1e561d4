"""The one place the tool version lives (read by pyproject and `pveplan --version`)."""

__version__ = "0.1.0"
