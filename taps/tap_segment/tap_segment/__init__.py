"""Singer tap for Segment's raw event archive. See README.md beside pyproject.toml."""

__version__ = "0.1.0"
