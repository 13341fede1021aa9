"""The canonical model: exact money, currencies, UTC times and consistent POs."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from connector.currency import minor_unit_exponent
from connector.model import (
    BillingLine,
    BillingPeriod,
    MatchResult,
    MatchStatus,
    Money,
    POLine,
    PurchaseOrder,
    Reason,
)
from tests.support.factories import make_plan, make_po


def test_money_refuses_floats() -> None:
    with pytest.raises(ValidationError, match="float"):
        Money(amount=0.1, currency="USD")  # type: ignore[arg-type]


def test_money_refuses_unknown_currency() -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        Money.of("1", "XYZ")


def test_money_arithmetic_is_exact_and_refuses_mixed_currencies() -> None:
    total = Money.of("0.10", "USD") + Money.of("0.20", "USD")
    assert total.amount == Decimal("0.30")
    with pytest.raises(ValueError, match="USD with EUR"):
        _ = Money.of("1", "USD") + Money.of("1", "EUR")


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [("JPY", "1234.5", "1235"), ("KWD", "1.2345", "1.235"), ("USD", "2.005", "2.01")],
)
def test_quantized_rounds_half_up_at_the_currency_exponent(currency: str, amount: str, expected: str) -> None:
    assert Money.of(amount, currency).quantized().amount == Decimal(expected)


def test_exponents_of_zero_two_and_three_decimal_currencies() -> None:
    assert [minor_unit_exponent(c) for c in ("JPY", "USD", "KWD", "CLF")] == [0, 2, 3, 4]


def test_po_total_is_sum_of_lines() -> None:
    assert make_po(quantity="12", price="100.00").total == Money.of("1200.00", "USD")


def _same_model(built: object, validated: object) -> None:
    """Equal, and alike in everything pydantic reports of them."""
    assert isinstance(built, MatchResult | Money) and isinstance(validated, MatchResult | Money)
    assert built == validated and validated == built
    assert type(built) is type(validated)
    assert repr(built) == repr(validated)
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert hash(built) == hash(validated)
    assert built.model_copy(update={}) == validated


def test_money_of_arithmetic_and_of_totals_is_the_money_validation_builds() -> None:
    ten, three = Money.of("10.50", "USD"), Money.of("3", "USD")
    _same_model(ten + three, Money(amount=Decimal("13.50"), currency="USD"))
    _same_model(ten - three, Money(amount=Decimal("7.50"), currency="USD"))
    _same_model(ten.times(Decimal("0.5")), Money(amount=Decimal("5.250"), currency="USD"))
    _same_model(Money.of("2.005", "USD").quantized(), Money(amount=Decimal("2.01"), currency="USD"))
    total = make_po(quantity="12", price="100.00").total
    _same_model(total, Money(amount=Decimal("1200.00"), currency="USD"))


def test_a_trusted_result_is_the_result_validation_builds_and_copies_apart() -> None:
    reason = Reason(code="renewal_due", detail="PO-1 term ends soon")
    fields = {
        "status": MatchStatus.MATCHED,
        "reasons": (),
        "billing_key": "default/b/S1/2026-10-01",
        "po_key": "default/inbox/PO-1",
        "po_number": "PO-1",
        "customer_ref": "C1",
        "amount": Money.of("40.00", "USD"),
        "warnings": (reason,),
    }
    given = set(fields)
    first, second = MatchResult.trusted(dict(fields), given), MatchResult.trusted(dict(fields), given)
    _same_model(first, MatchResult(**fields))
    unset = {key: value for key, value in fields.items() if key != "warnings"}
    _same_model(MatchResult.trusted({**unset, "warnings": ()}, set(unset)), MatchResult(**unset))
    changed = first.model_copy(update={"status": MatchStatus.MISMATCH})
    assert changed.status is MatchStatus.MISMATCH and first.status is MatchStatus.MATCHED
    assert second.model_fields_set == given == first.model_fields_set


def test_a_period_computes_its_key_and_total_once_and_a_po_line_states_no_amount_of_its_own() -> None:
    period = BillingPeriod(
        billing_source="b",
        subscription_id="S1",
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        customer_ref="C1",
        currency="USD",
        lines=(
            BillingLine(sku="A", quantity=Decimal(3), unit_price=Money.of("10", "USD")),
            BillingLine(
                sku="B",
                quantity=Decimal(1),
                unit_price=Money.of("9.99", "USD"),
                line_amount=Money.of("9.00", "USD"),
            ),
        ),
    )
    assert period.total is period.total
    assert period.total == Money.of("39.00", "USD")
    assert period.key is period.key
    assert period.key == "default/b/S1/2026-10-01"
    assert period == period.model_copy()
    line = POLine(line_no=1, sku="A", quantity=Decimal(1), unit_price=Money.of("1", "USD"))
    assert line.line_amount is None


def test_po_refuses_a_line_in_another_currency() -> None:
    with pytest.raises(ValidationError, match="line 1 is in EUR"):
        PurchaseOrder(
            source="s",
            external_id="1",
            po_number="1",
            currency="USD",
            lines=(POLine(line_no=1, sku="A", quantity=Decimal(1), unit_price=Money.of("1", "EUR")),),
        )


def test_naive_datetimes_are_refused_and_aware_ones_become_utc() -> None:
    with pytest.raises(ValidationError, match="no timezone"):
        make_po(updated=datetime(2026, 1, 1))
    po = make_po(updated=datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert po.source_updated_at is not None and po.source_updated_at.hour == 10


def test_term_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="before it starts"):
        make_po().model_copy(update={}).model_validate(
            {**make_po().model_dump(), "term_start": date(2026, 5, 1), "term_end": date(2026, 4, 1)}
        )


def test_invoice_plan_total_uses_quantized_line_amounts() -> None:
    plan = make_plan(price="0.333", quantity="3")
    assert plan.total == Money.of("1.00", "USD")


def test_a_plans_breakdown_is_computed_once_and_a_copy_with_other_lines_computes_its_own() -> None:
    from tests.support.factories import make_taxed_plan, vat

    plan = make_taxed_plan(taxes=(vat("19"),))
    assert plan.tax_breakdown is plan.tax_breakdown  # cached: totals, sinks and the outbox reread it
    assert plan.model_copy(update={"sink": "other"}).tax_breakdown == plan.tax_breakdown
    other_rate = plan.lines[0].model_copy(update={"tax": vat("7")})
    copied = plan.model_copy(update={"lines": (other_rate,)})
    assert [group.rate for group in copied.tax_breakdown] == [7]
    assert copied.tax_total.amount == Decimal("14.00") and plan.tax_total.amount == Decimal("38.00")
    assert "tax_breakdown" not in plan.model_dump()
