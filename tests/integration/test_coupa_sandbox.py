"""The coupa source over real sockets against the Coupa-like sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.coupa import CoupaConfig, CoupaSource
from adapters.coupa_mapping import parse_timestamp
from connector.errors import AuthenticationError, ConfigError, InputProblem, RetryableError
from connector.http import RetryPolicy
from connector.model import PurchaseOrder
from connector.ports import AdapterContext, PullContext
from tests.sandboxes.base import Fault, Request
from tests.sandboxes.coupa import CoupaSandbox

SECRET_ENV = "COUPA_SANDBOX_SECRET"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[CoupaSandbox]:
    box = CoupaSandbox()
    box.start()
    monkeypatch.setenv(SECRET_ENV, box.client_secret)
    yield box
    box.stop()


def make_source(sandbox: CoupaSandbox, *, attempts: int = 6, **overrides: Any) -> CoupaSource:
    values: dict[str, Any] = {
        "name": "acme-coupa",
        "base_url": sandbox.url,
        "client_id": sandbox.client_id,
        "client_secret_env": SECRET_ENV,
        "timeout_connect": 1.0,
        "timeout_read": 1.0,
    }
    values.update(overrides)
    return CoupaSource(
        CoupaConfig(**values),
        AdapterContext(),
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05),
    )


def api_get(request: Request) -> bool:
    return request.method == "GET" and request.path.startswith("/api/")


@dataclass
class Core:
    """Plays the core's part: commits each batch's records and cursor, latest revision wins."""

    source: CoupaSource
    cursor: dict[str, Any] | None = None
    pos: dict[str, PurchaseOrder] = field(default_factory=dict)
    rejections: list[InputProblem] = field(default_factory=list)
    batches: int = 0

    def pull(self) -> list[PurchaseOrder]:
        seen: list[PurchaseOrder] = []
        context = PullContext(cursor=self.cursor, started_at=datetime.now(UTC))
        for batch in self.source.pull(context):
            self.batches += 1
            for record in batch.records:
                seen.append(record.po)
                current = self.pos.get(record.po.key)
                if current is None or _newer(record.po, current):
                    self.pos[record.po.key] = record.po
            self.rejections.extend(batch.rejections)
            if batch.cursor is not None:
                assert self.cursor is None or batch.cursor["updated_at"] >= self.cursor["updated_at"]
                self.cursor = batch.cursor
        return seen

    def by_id(self) -> dict[int, PurchaseOrder]:
        return {int(po.external_id): po for po in self.pos.values()}


def _newer(candidate: PurchaseOrder, current: PurchaseOrder) -> bool:
    return (candidate.revision, candidate.source_updated_at or datetime.min.replace(tzinfo=UTC)) >= (
        current.revision,
        current.source_updated_at or datetime.min.replace(tzinfo=UTC),
    )


def test_a_thousand_pos_arrive_exactly_once_through_5xx_and_a_429_burst(sandbox: CoupaSandbox) -> None:
    sandbox.generate(1000)
    for retry_after in ("0", "0", None):
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        sandbox.faults.queue(Fault("status", status=429, headers=headers), matches=api_get)
    sandbox.faults.random(
        0.10, [Fault("status", status=500), Fault("status", status=503)], matches=lambda r: api_get(r)
    )
    core = Core(make_source(sandbox, attempts=8))
    core.pull()
    assert set(core.by_id()) == set(sandbox.pos) and len(core.pos) == 1000
    assert core.rejections == []
    served = sandbox.pages_served
    assert 20 <= served <= 23 and sandbox.count("GET", "/api/") > served + 3  # faults really fired
    newest = max(po.source_updated_at for po in core.pos.values() if po.source_updated_at)
    assert core.cursor == {"updated_at": newest.isoformat()}

    sandbox.faults.clear()
    before = sandbox.count()
    again = Core(make_source(sandbox), cursor=core.cursor)
    changed = [po for po in again.pull() if core.pos[po.key].raw_sha256 != po.raw_sha256]
    assert sandbox.count() - before <= 2 and changed == []


def test_a_po_changed_while_paging_skips_no_neighbour_and_arrives_changed(sandbox: CoupaSandbox) -> None:
    sandbox.generate(150)
    moved = sandbox.ordered_ids()[10]
    # Plain offset paging would now miss the PO that slides from the second page onto the first.
    sandbox.after_page(1, lambda box: box.update_po(moved, status="closed"))
    core = Core(make_source(sandbox))
    core.pull()
    assert set(core.by_id()) == set(sandbox.pos)
    assert core.by_id()[moved].revision == 2 and core.by_id()[moved].source_status == "closed"


def test_a_po_changed_after_the_last_page_is_picked_up_by_the_next_pull(sandbox: CoupaSandbox) -> None:
    sandbox.generate(30)
    changed = sandbox.ordered_ids()[3]
    sandbox.after_page(1, lambda box: box.update_po(changed, status="supplier_hold"))
    core = Core(make_source(sandbox))
    core.pull()
    assert core.by_id()[changed].revision == 1
    second = core.pull()
    assert changed in {int(po.external_id) for po in second}
    assert core.by_id()[changed].revision == 2 and core.by_id()[changed].status.value == "on_hold"


def test_a_bad_secret_is_an_authentication_error(
    sandbox: CoupaSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-right-secret-xyz")
    with pytest.raises(AuthenticationError) as caught:
        Core(make_source(sandbox)).pull()
    assert isinstance(caught.value, ConfigError)
    assert "not-the-right-secret-xyz" not in str(caught.value)
    assert sandbox.tokens_issued == 0 and sandbox.count("GET", "/api/") == 0


def test_an_expired_token_is_refreshed_once(sandbox: CoupaSandbox) -> None:
    sandbox.generate(60)
    core = Core(make_source(sandbox))
    core.pull()
    sandbox.expire_tokens()
    first = sandbox.ordered_ids()[0]
    sandbox.update_po(first, status="closed")
    core.pull()
    assert sandbox.tokens_issued == 2 and sandbox.rejected_401 == 1
    assert core.by_id()[first].source_status == "closed"


def test_a_persistent_5xx_is_retried_then_fails_retryable(sandbox: CoupaSandbox) -> None:
    sandbox.generate(5)
    sandbox.faults.queue(Fault("status", status=502), matches=api_get, times=100)
    with pytest.raises(RetryableError) as caught:
        Core(make_source(sandbox, attempts=4)).pull()
    assert caught.value.status == 502 and sandbox.count("GET", "/api/") == 4


def test_resets_and_read_timeouts_on_reads_are_retried(sandbox: CoupaSandbox) -> None:
    sandbox.generate(70)
    sandbox.faults.queue(Fault("reset"), matches=api_get)
    sandbox.faults.queue(Fault("timeout", delay=1.5), matches=api_get)
    sandbox.faults.queue(Fault("truncate"), matches=api_get)
    core = Core(make_source(sandbox))
    core.pull()
    assert len(core.pos) == 70


def test_the_client_rate_limit_keeps_under_the_servers(sandbox: CoupaSandbox) -> None:
    sandbox.generate(300)
    sandbox.rate_limit(10, 1.0)
    core = Core(make_source(sandbox, rate_per_second=8, burst=5))
    core.pull()
    assert len(core.pos) == 300 and sandbox.rate_limited == 0


def test_a_server_rate_limit_is_waited_out_with_retry_after(sandbox: CoupaSandbox) -> None:
    sandbox.generate(200)
    sandbox.rate_limit(3, 1.0, retry_after="1")
    core = Core(make_source(sandbox))
    core.pull()
    assert len(core.pos) == 200 and sandbox.rate_limited >= 1


def test_fetch_returns_the_po_with_that_number(sandbox: CoupaSandbox) -> None:
    sandbox.generate(20)
    sandbox.add_po(
        po_number="ACME-PO-77",
        currency="EUR",
        lines=[{"quantity": "3", "price": "120.00"}, {"quantity": "1", "price": "1500.00"}],
        payment_term="2/10 Net 30",
    )
    source = make_source(sandbox)
    (record,) = source.fetch("ACME-PO-77")
    po = record.po
    assert (po.po_number, po.currency, str(po.total)) == ("ACME-PO-77", "EUR", "1860.00 EUR")
    assert po.payment_terms is not None and po.payment_terms.net_days == 30
    assert record.document == f"{sandbox.url}/api/purchase_orders/{po.external_id}"
    assert source.fetch("NOPE-1") == []


def test_trimming_with_fields_keeps_what_the_mapping_needs(sandbox: CoupaSandbox) -> None:
    service = {"service-start-date": "2026-01-01", "service-end-date": "2026-12-31"}
    made = sandbox.add_po(
        po_number="TRIM-1",
        lines=[{"source-part-num": "PLAN-PRO", **service}, {"source-part-num": "SETUP"}],
        **{
            "issued-at": "2025-12-20T10:00:00Z",
            "start-date": "2026-01-01",
            "end-date": "2026-12-31",
            "bill-to-address": {"name": "Acme AP", "street1": "9 Bill St", "city": "Austin",
                                "postal-code": "73301", "country": {"code": "US"}},
        },
    )  # fmt: skip
    (trimmed,) = make_source(sandbox).fetch("TRIM-1")
    (full,) = make_source(sandbox, fields=False).fetch("TRIM-1")
    assert "transmission-method-override" in full.raw and "transmission-method-override" not in trimmed.raw
    assert trimmed.po.model_dump(exclude={"raw_sha256"}) == full.po.model_dump(exclude={"raw_sha256"})
    assert trimmed.po.external_id == str(made["id"])
    assert trimmed.po.lines[0].service_start is not None and trimmed.po.lines[0].service_end is not None
    assert (trimmed.po.term_start, trimmed.po.term_end) == (full.po.term_start, full.po.term_end)
    assert trimmed.po.bill_to is not None and trimmed.po.issued_on is not None


def test_a_pull_since_a_date_asks_the_server_for_just_those_pos(sandbox: CoupaSandbox) -> None:
    made = sandbox.generate(510, step=timedelta(minutes=10))
    since = parse_timestamp(made[-57]["updated-at"], "updated-at")
    source = make_source(sandbox, page_size=50)
    before = sandbox.count("GET", "/api/")
    context = PullContext(cursor=None, started_at=datetime.now(UTC), since=since)
    records = [r for batch in source.pull(context) for r in batch.records]
    assert {r.po.external_id for r in records} == {str(po["id"]) for po in made[-57:]}
    # Two pages of 50 and a probe that the server sorts across pages: not the 11 pages of 510.
    assert sandbox.count("GET", "/api/") - before <= 3
