"""The gpunet command's exit statuses, besides 0 (docs/cli.md, "Exit statuses")."""
EXIT_ERROR = 1          # unusable data, checkpoint or metrics file; a file that cannot be written
EXIT_USAGE = 2          # bad options or environment, or a backend that cannot run here
EXIT_NON_FINITE = 3     # the training loss stopped being finite
# A signal ends a command with 128 + its number, as a shell reports a process it ended.
EXIT_HANGUP = 129       # SIGHUP (1): the terminal closed
EXIT_INTERRUPTED = 130  # SIGINT (2): Ctrl-C
EXIT_TERMINATED = 143   # SIGTERM (15): kill, a scheduler's end of the job
