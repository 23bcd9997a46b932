"""anatprep nipype interfaces: one module per unit of work."""

__version__ = "0.1.0"
