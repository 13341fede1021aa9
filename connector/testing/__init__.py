"""The adapter conformance kit: standard pytest tests any source, billing source or sink must pass.

An adapter's test module describes what the kit cannot guess (how to start a sandbox, build the
adapter against it, seed records, break a credential, inject a fault, count remote invoices) in
a `SourceFixture` or `SinkFixture`, and gets the standard tests by subclassing `SourceKit` or
`SinkKit`. The checks are plain functions too (`run_source_check`, `run_sink_check`).
See docs/writing-an-adapter.md.
"""

from connector.testing.fixtures import (
    ConformanceFailure,
    InjectedFault,
    MissingFixture,
    NotApplicable,
    Rig,
    SinkFixture,
    SkipCheck,
    SourceFixture,
    not_applicable,
)
from connector.testing.samples import sample_credit_note, sample_plan
from connector.testing.sink_checks import SINK_CHECKS, deliver, run_sink_check
from connector.testing.sink_kit import SinkKit, sink_conformance
from connector.testing.source_checks import SOURCE_CHECKS, run_source_check
from connector.testing.source_kit import SourceKit, source_conformance

__all__ = [
    "SINK_CHECKS",
    "SOURCE_CHECKS",
    "ConformanceFailure",
    "InjectedFault",
    "MissingFixture",
    "NotApplicable",
    "Rig",
    "SinkFixture",
    "SinkKit",
    "SkipCheck",
    "SourceFixture",
    "SourceKit",
    "deliver",
    "not_applicable",
    "run_sink_check",
    "run_source_check",
    "sample_credit_note",
    "sample_plan",
    "sink_conformance",
    "source_conformance",
]
