"""Helpers shared by the kit's test modules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from tests.sandboxes.base import Sandbox

S = TypeVar("S", bound=Sandbox)


@contextmanager
def serving(box: S) -> Iterator[S]:
    """Run a sandbox for one test; stop it in the background (shutdown polls every 0.5 s)."""
    box.start()
    try:
        yield box
    finally:
        threading.Thread(target=box.stop, daemon=True).start()
