"""anatprep workflows, configuration, execution and command line (``anatprep.pipelines``)."""
