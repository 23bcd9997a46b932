"""Exit codes of every ``anatprep`` command."""

EXIT_OK = 0  #: everything done
EXIT_INTERNAL = 1  #: a bug or an unexpected condition (reported, never a bare traceback)
EXIT_USAGE = 2  #: bad arguments or config
EXIT_NO_DATA = 3  #: nothing usable to process
EXIT_PARTIAL = 4  #: some subjects or series failed; the others completed
EXIT_INPUT_CHANGED = 5  #: ``provenance OUTPUT INPUT``: an input series changed since the run
EXIT_INTERRUPTED = 130  #: SIGINT (Ctrl-C): the workers were ended; a rerun resumes
EXIT_TERMINATED = 143  #: SIGTERM (SLURM, timeout, container stop): as for SIGINT
