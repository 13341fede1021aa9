"""The one error tree of po-connector, and what the core does with each branch.

ConnectorError
├── ConfigError            bad or missing configuration        -> exit 2, nothing runs
│   └── AuthenticationError  credentials refused (401/403)     -> exit 2 / row stays, fix config
├── InputError             a bad file, row or field            -> the record is quarantined,
│                                                                 the batch goes on
├── LeaseHeldError         another run holds the partition     -> exit 75 (EX_TEMPFAIL)
└── RemoteError            a call to an external system failed
    ├── RejectedError      permanent (4xx validation)          -> never retried: row goes dead
    ├── RetryableError     nothing was written (429, connect   -> retried with backoff, then
    │                      refused, 5xx known before write)       parked for the next run
    └── UncertainError     it may have been written (timeout   -> never re-sent blindly: the
                           after send, 5xx after send, bad 2xx)   sink's lookup decides first
"""

from __future__ import annotations

from dataclasses import dataclass


class ConnectorError(Exception):
    """Base of every error po-connector raises on purpose."""


class ConfigError(ConnectorError):
    """The configuration is missing, malformed or refers to something that does not exist."""


class AuthenticationError(ConfigError):
    """A remote system refused our credentials: a person must fix the configuration."""


@dataclass(frozen=True)
class InputProblem:
    """Where a bad external input was found and why it was refused."""

    source: str
    document: str
    location: str
    field: str
    value: str
    reason: str

    def describe(self) -> str:
        where = ", ".join(p for p in (self.document, self.location) if p)
        return f"{self.source}: {where}: field {self.field!r} value {self.value!r}: {self.reason}"


class InputError(ConnectorError):
    """A record from outside failed validation; it is quarantined and the batch goes on."""

    def __init__(self, problem: InputProblem) -> None:
        super().__init__(problem.describe())
        self.problem = problem


class NotFoundError(ConnectorError):
    """A verb was told to act on something (run, PO, key, cursor, source, sink) that is not there (exit 2)."""


class RefusedError(ConnectorError):
    """A verb was asked for what the state does not allow now (crediting an unsent invoice): exit 2."""


class UnavailableError(ConnectorError):
    """A service the run cannot do without (the state database) is down: try later (exit 75)."""


class LeaseHeldError(ConnectorError):
    """Another run holds the lease of this partition; try again later (exit 75)."""


class RemoteError(ConnectorError):
    """A call to an external system failed; the subclass says whether it may be retried."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider_code: str = "",
        correlation_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider_code = provider_code
        self.correlation_id = correlation_id


class RejectedError(RemoteError):
    """The remote system refused the request for good: never retried, the row goes dead."""


class RetryableError(RemoteError):
    """Nothing was written remotely; the same request may be sent again after a pause.

    `retry_after` is the pause the provider asked for in seconds; `park` is True when the pause
    is too long to wait in-process (a daily limit) and the row waits for a later run instead.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        park: bool = False,
        status: int | None = None,
        provider_code: str = "",
        correlation_id: str = "",
    ) -> None:
        super().__init__(message, status=status, provider_code=provider_code, correlation_id=correlation_id)
        self.retry_after = retry_after
        self.park = park


class UncertainError(RemoteError):
    """The request may have been applied remotely: resolve by lookup before sending again."""


def exit_code_for(error: BaseException) -> int:
    """The process exit code a run ended by `error` gets (connector.exits): 2 for configuration
    and not-found, 75 for a held lease or an unavailable service, 1 for anything else."""
    from connector import exits

    if isinstance(error, LeaseHeldError | UnavailableError):
        return exits.EXIT_TEMPFAIL
    if isinstance(error, ConfigError | NotFoundError | RefusedError):
        return exits.EXIT_USAGE
    return exits.EXIT_FAILED


# The errors that end a command with one line on stderr instead of a traceback.
ENDS_A_COMMAND = (LeaseHeldError, UnavailableError, NotFoundError, RefusedError, ConfigError)


def describe(error: BaseException) -> str:
    """The one line a command that ends on `error` prints, prefixed with what kind of end it is."""
    if isinstance(error, UnavailableError):
        return f"unavailable: {error}"
    if isinstance(error, NotFoundError):
        return f"not found: {error}"
    if isinstance(error, RefusedError):
        return f"refused: {error}"
    if isinstance(error, ConfigError):
        return f"configuration error: {error}"
    return str(error)
