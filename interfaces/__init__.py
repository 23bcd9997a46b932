"""anatprep nipype interfaces: one module per unit of work (``anatprep.interfaces``)."""
