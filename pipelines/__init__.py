"""anatprep workflows, configuration, execution and command line."""

from interfaces import __version__

__all__ = ["__version__"]
