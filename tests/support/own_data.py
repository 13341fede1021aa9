"""A connector on the example's configuration with none of its data: the test stores its own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from connector.config import load_config
from connector.model import BillingPeriod, PurchaseOrder
from connector.runtime import Connector
from state import billing_store, ingest
from tests.support.cli import copy_example


def connector_without_data(tmp_path: Path) -> Connector:
    """The example's config under `tmp_path`, its inbox empty and its billing export bare."""
    config = copy_example(tmp_path)
    text = config.read_text(encoding="utf-8")
    text = text.replace('maildir = "examples/inbox"', f'maildir = "{tmp_path / "empty"}"')
    text = text.replace('path = "examples/billing.csv"', f'path = "{tmp_path / "billing.csv"}"')
    (tmp_path / "empty").mkdir()
    (tmp_path / "billing.csv").write_text(
        "customer_ref,subscription_id,period_start,period_end,sku,quantity,unit_price,currency\n",
        encoding="utf-8",
    )
    config.write_text(text, encoding="utf-8")
    return Connector(load_config(config))


def store(app: Connector, now: datetime, *items: PurchaseOrder | BillingPeriod) -> None:
    """Store POs and billing periods as a pull would, in one transaction."""
    with app.engine.begin() as conn:
        for item in items:
            if isinstance(item, PurchaseOrder):
                ingest.store_po(conn, item, "{}", "test", now, None)
            else:
                billing_store.store_billing_period(conn, item, now)
