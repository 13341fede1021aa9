"""The exit codes of every verb: 0 done, 1 something failed, 2 usage or configuration, 75 later."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TEMPFAIL = 0, 1, 2, 75
