"""The `po-connector` command group and what every verb shares: options, exit handling, output.

Verb modules (`connector.cli`, `connector.cli_support`) import this one; it imports none of them.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click

from connector.errors import ENDS_A_COMMAND, describe, exit_code_for

log = logging.getLogger("po_connector.cli")

if TYPE_CHECKING:
    from connector.config import LoadedConfig
    from connector.runtime import Connector


@dataclass
class Options:
    """Global options shared by every command."""

    config: str | None
    json_output: bool
    verbosity: int


_OPTIONS_KEY = "po_connector.options"


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr and the exit code; under --json also a summary on stdout."""
    click.echo(f"po-connector: {message}", err=True)
    context = click.get_current_context(silent=True)
    options = context.meta.get(_OPTIONS_KEY) if context is not None else None
    if context is not None and options is not None and options.json_output:
        command = context.command_path.removeprefix(context.find_root().info_name or "").strip()
        click.echo(json.dumps({"command": command, "exit_code": code, "errors": [message]}))
    sys.exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn the error tree into exit codes with one line on stderr."""
    try:
        yield
    except ENDS_A_COMMAND as exc:
        fail(describe(exc), exit_code_for(exc))


def load(options: Options, *, migrate: bool = True) -> Connector:
    from connector.config import load_config
    from connector.runtime import Connector

    loaded = load_config(options.config)
    configure_logging(options, loaded)
    return Connector(loaded, migrate=migrate)


def log_settings(options: Options, loaded: LoadedConfig | None) -> tuple[str, str]:
    """Level and format of the logs: the config's `[log]` (defaults without one), shifted by -v and -q."""
    level = loaded.settings.log.level if loaded else "INFO"
    fmt = loaded.settings.log.format if loaded else "auto"
    if options.verbosity > 0:
        level = "DEBUG"
    elif options.verbosity < 0:
        level = "ERROR"
    return level, fmt


def configure_logging(options: Options, loaded: LoadedConfig | None) -> None:
    """Logs (and the progress bar) as `log_settings` and the options say."""
    from connector import progress
    from connector.logs import setup_logging

    progress.ENABLED = options.verbosity >= 0 and not options.json_output
    setup_logging(*log_settings(options, loaded))


def emit(
    options: Options, data: dict[str, Any], human: Callable[[dict[str, Any]], str], *, quiet: bool = True
) -> None:
    """The result on stdout: JSON under --json; under -q (when `quiet`) nothing, and only a run's
    errors on stderr."""
    if options.json_output:
        click.echo(json.dumps(data, default=str, sort_keys=False))
    elif quiet and options.verbosity < 0:
        for error in data.get("errors", []):
            click.echo(f"po-connector: {error}", err=True)
    else:
        click.echo(human(data))


def human_summary(data: dict[str, Any]) -> str:
    lines = [f"run {data['run_id']} ({data['command']}): exit {data['exit_code']}"]
    for key, value in data.items():
        if key in ("run_id", "command", "exit_code", "errors"):
            continue
        lines.append(f"  {key:<20} {value}")
    lines.extend(f"  ! {error}" for error in data.get("errors", []))
    return "\n".join(lines)


def run_job(
    options: Options,
    job: Callable[[Connector], dict[str, Any]],
    human: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    with handled():
        app = load(options)
        data = job(app)
    # -q silences the run summary; a result asked for (a dry run's preview) is still printed.
    emit(options, data, human or human_summary, quiet=human is None)
    sys.exit(data["exit_code"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config", metavar="PATH", help="Config file (else $PO_CONNECTOR_CONFIG, else ./config.toml)."
)
@click.option("--json", "json_output", is_flag=True, help="Print a machine-readable summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr.")
@click.version_option(package_name="po-connector")
@click.pass_context
def cli(ctx: click.Context, config: str | None, json_output: bool, quiet: bool, verbose: bool) -> None:
    """Take buyers' POs, reconcile them with billing, push matching invoices exactly once."""
    ctx.obj = Options(config=config, json_output=json_output, verbosity=1 if verbose else -1 if quiet else 0)


def pass_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Accept the global options after the command name too (`sync --config X --json`)."""

    @click.option("--config", "config_", metavar="PATH", help="Config file.")
    @click.option("--json", "json_", is_flag=True, help="Machine-readable summary on stdout.")
    @click.option("-q", "--quiet", "quiet_", is_flag=True, help="Only errors on stderr.")
    @click.option("-v", "--verbose", "verbose_", is_flag=True, help="Debug logs on stderr.")
    @click.pass_context  # type: ignore[arg-type]  # the wrapper adds the global options
    @functools.wraps(command)
    def wrapper(
        ctx: click.Context, config_: str | None, json_: bool, quiet_: bool, verbose_: bool, **kwargs: Any
    ) -> Any:
        base = ctx.find_object(Options) or Options(config=None, json_output=False, verbosity=0)
        options = Options(
            config=config_ or base.config,
            json_output=json_ or base.json_output,
            verbosity=1 if verbose_ else -1 if quiet_ else base.verbosity,
        )
        ctx.meta[_OPTIONS_KEY] = options
        return command(options, **kwargs)

    return wrapper
