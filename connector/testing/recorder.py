"""Plays the core's part in a pull: commits each batch's records, input key and cursor.

It mirrors `connector.intake`: a batch whose input key was committed before is dropped, a batch
cursor of None leaves the stored cursor as it was, and what a run committed is the next run's
starting point. Records are kept by key with a fingerprint of their content, so a later run can
tell a record it has seen from a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from connector.errors import InputProblem
from connector.model import BillingPeriod, PurchaseOrder
from connector.ports import AdapterKind, BillingBatch, PullContext, SourceBatch, SourceRecord
from connector.testing.fixtures import expect

MAX_BATCHES = 10_000


@dataclass
class Ledger:
    """What the core's state holds between runs of one source."""

    cursor: dict[str, Any] | None = None
    processed: set[str] = field(default_factory=set)
    records: dict[str, str] = field(default_factory=dict)  # key -> content fingerprint


@dataclass
class PullRun:
    """What one run of a pull yielded, batch by batch."""

    batches: int = 0
    records: list[BaseModel] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    rejections: list[InputProblem] = field(default_factory=list)
    cursors: list[dict[str, Any]] = field(default_factory=list)
    new: list[str] = field(default_factory=list)  # keys new or changed against the ledger
    finished: bool = False


def fingerprint(record: BaseModel) -> str:
    """The content of a canonical record as JSON: equal content, equal fingerprint."""
    return record.model_dump_json()


def key_of(record: BaseModel) -> str:
    if isinstance(record, PurchaseOrder | BillingPeriod):
        return record.key
    raise TypeError(f"not a canonical record: {type(record).__name__}")


def pull(
    source: Any,
    kind: AdapterKind,
    ledger: Ledger,
    *,
    stop_after: int | None = None,
    max_batches: int = MAX_BATCHES,
) -> PullRun:
    """Run one pull from the ledger's state, committing each batch into it as the core would."""
    context = PullContext(cursor=ledger.cursor, started_at=datetime.now(UTC))
    if kind is AdapterKind.SOURCE:
        context.is_processed = ledger.processed.__contains__
    run = PullRun()
    batches = source.pull(context)
    try:
        for batch in batches:
            run.batches += 1
            expect(
                run.batches <= max_batches,
                f"pull yielded more than {max_batches} batches: its paging never ends",
            )
            _commit(batch, kind, ledger, run)
            if stop_after is not None and run.batches >= stop_after:
                return run
        run.finished = True
        return run
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _commit(batch: Any, kind: AdapterKind, ledger: Ledger, run: PullRun) -> None:
    wanted = SourceBatch if kind is AdapterKind.SOURCE else BillingBatch
    expect(isinstance(batch, wanted), f"pull yielded a {type(batch).__name__}, not a {wanted.__name__}")
    for problem in batch.rejections:
        expect(
            isinstance(problem, InputProblem),
            f"a rejection is a {type(problem).__name__}, not a connector.errors.InputProblem",
        )
    run.rejections.extend(batch.rejections)
    input_key = getattr(batch, "input_key", None)
    if input_key is not None and input_key in ledger.processed:
        return  # the core drops an input committed before
    for item in batch.records:
        record, raw = _record(item, kind)
        run.records.append(record)
        run.raws.append(raw)
        key, content = key_of(record), fingerprint(record)
        if ledger.records.get(key) != content:
            run.new.append(key)
        ledger.records[key] = content
    if input_key is not None:
        ledger.processed.add(input_key)
    if batch.cursor is not None:
        expect(isinstance(batch.cursor, Mapping), f"a batch cursor is a {type(batch.cursor).__name__}")
        run.cursors.append(dict(batch.cursor))
        ledger.cursor = dict(batch.cursor)
    if getattr(batch, "after_commit", None) is not None:
        batch.after_commit()


def _record(item: Any, kind: AdapterKind) -> tuple[BaseModel, str]:
    if kind is AdapterKind.SOURCE:
        expect(isinstance(item, SourceRecord), f"a source batch holds a {type(item).__name__}")
        expect(isinstance(item.po, PurchaseOrder), f"a SourceRecord holds a {type(item.po).__name__}")
        return item.po, item.raw
    expect(isinstance(item, BillingPeriod), f"a billing batch holds a {type(item).__name__}")
    return item, ""
