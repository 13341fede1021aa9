"""A run is recorded with the exit code its process ends with, whatever error ended it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from connector.config import load_config
from connector.errors import ConfigError, NotFoundError, RejectedError, UnavailableError
from connector.runtime import Connector
from state.tables import runs
from tests.support.cli import copy_example


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("sinks[0].base_url: bad"), 2),
        (NotFoundError("PO NOPE"), 2),
        (UnavailableError("state database down"), 75),
        (RejectedError("refused"), 1),
        (RuntimeError("a bug"), 1),
    ],
)
def test_a_run_ended_by_an_error_is_recorded_with_its_exit_code(
    tmp_path: Path, error: Exception, code: int
) -> None:
    app = Connector(load_config(copy_example(tmp_path)))
    with pytest.raises(type(error)), app.run("sync"):
        raise error
    with app.connect() as conn:
        status, exit_code, text = conn.execute(select(runs.c.status, runs.c.exit_code, runs.c.error)).one()
    assert (status, exit_code) == ("failed", code)
    assert type(error).__name__ in text
