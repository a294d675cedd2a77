"""The gpunet command's exit statuses, besides 0 (README: "Errors and exit statuses")."""
EXIT_ERROR = 1          # unusable data, checkpoint or metrics file; a file that cannot be written
EXIT_USAGE = 2          # bad options or environment, or a backend that cannot run here
EXIT_NON_FINITE = 3     # the training loss stopped being finite
EXIT_INTERRUPTED = 130  # Ctrl-C
