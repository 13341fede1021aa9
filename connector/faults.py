"""Named crash points for crash-recovery tests (`PO_CONNECTOR_CRASH_AT=<point>`).

Production never sets the variable; tests set it on a child process to kill it at an exact step
of the push protocol and prove that the next run recovers without a duplicate or a loss.
"""

from __future__ import annotations

import os

CRASH_ENV = "PO_CONNECTOR_CRASH_AT"
AFTER_REMOTE_CREATE = "after-remote-create"
BEFORE_REMOTE_CREATE = "before-remote-create"
AFTER_SOURCE_BATCH = "after-source-batch"


def crash_point(name: str) -> None:
    """Kill the process at once (no cleanup, like a power cut) when `name` is the chosen point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
