"""The exit codes of every verb: 0 done, 1 something failed, 2 usage or configuration, 75 later."""

from collections.abc import Iterable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TEMPFAIL = 0, 1, 2, 75

# From least to most in need of a person: done; try again later (the next start will); some
# records failed (replay after a fix); nothing ran until the configuration is fixed.
SEVERITY = (EXIT_OK, EXIT_TEMPFAIL, EXIT_FAILED, EXIT_USAGE)


def worst(codes: Iterable[int]) -> int:
    """The exit code of a command made of several runs (one per tenant): the most severe one.

    A code outside SEVERITY (a process killed by a signal) ranks above all of them; no runs is 0.
    """
    return max(codes, key=lambda code: SEVERITY.index(code) if code in SEVERITY else len(SEVERITY), default=0)
