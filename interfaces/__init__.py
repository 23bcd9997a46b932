"""anatprep nipype interfaces: one module per unit of work (``anatprep.interfaces``).

A module that defines a nipype interface keeps its name and place: a finished node's result
file in a work dir pickles the interface class by its module path, so a renamed module would
leave earlier work dirs with results that cannot be read (``tests/test_work_dir_compatibility.py``).
"""
