"""Which port an adapter implements and what it can do: plain enums, cheap to import."""

from __future__ import annotations

import enum


class AdapterKind(enum.StrEnum):
    """Which port an adapter implements."""

    SOURCE = "source"
    BILLING = "billing"
    SINK = "sink"


class Capability(enum.StrEnum):
    """What an adapter can do beyond the minimum of its port."""

    INCREMENTAL = "incremental"  # pulls from a cursor, not everything each time
    FETCH_ONE = "fetch-one"  # fetch(po_number) for resync
    BATCH_PUSH = "batch-push"  # push_batch(plans)
    NATIVE_IDEMPOTENCY = "native-idempotency-key"  # provider de-duplicates retries by a key
    NATIVE_UPSERT = "native-upsert"  # create-or-replace by our key
    LOOKUP = "lookup"  # find(plans) finds invoices already created
    CREDIT_NOTES = "credit-notes"  # push/find also take credit notes (plan.is_credit_note)
    ACKNOWLEDGE = "acknowledge"  # a source that tells the buyer a PO revision was accepted/rejected
    INSPECT = "inspect"  # a source class that parses one local file (`inspect FILE`): FileInspector
    RECEIVE = "receive"  # a source class that builds an HTTP receiver (`serve`): Receivable
