"""The email-csv PO source over a copy of the bundled example inbox and variations of it."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest

from adapters.email_csv import EmailCsvConfig, EmailCsvSource
from adapters.email_csv_parsing import buyer_for, parse_csv_file, parse_message_file
from connector.errors import ConfigError
from connector.model import PaymentTerms
from connector.ports import AdapterContext, POSource, PullContext, SourceBatch
from mappings.csv_mapping import load_mapping

EXAMPLE_INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"
CSV = "PO Number,SKU,Quantity,Unit Price,Currency\nP-1,PLAN-PRO,1,10.00,USD\n"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    shutil.copytree(EXAMPLE_INBOX, folder)
    return folder


def make_source(folder: Path, **options) -> EmailCsvSource:
    config = EmailCsvConfig(name="inbox", type="email-csv", maildir=folder, **options)
    return EmailCsvSource(config, AdapterContext(base_dir=folder.parent))


def is_read_marker(batch: SourceBatch) -> bool:
    """The empty batch that records a message as read whole (by digest, or by its file's stat),
    or messages known again by their files' stat (`is_stat_remark`)."""
    if batch.records or batch.rejections:
        return False
    return str(batch.input_key).endswith(("|read", "|stat")) or is_stat_remark(batch)


def is_stat_remark(batch: SourceBatch) -> bool:
    """The batch marking messages read whole before, touched or moved since, by their new stat."""
    return (
        batch.input_key is None
        and not batch.records
        and bool(batch.also_processed)
        and all(key.endswith("|stat") for key in batch.also_processed)
    )


def read_whole(batch: SourceBatch) -> bool:
    """Whether committing the batch records its message as read whole (by its digest)."""
    return any(str(key).endswith("|read") for key in (batch.input_key, *batch.also_processed))


def committed(batches: list[SourceBatch]) -> set[str]:
    """The input keys the core records when it commits these batches."""
    return {str(b.input_key) for b in batches if b.input_key} | {
        key for b in batches for key in b.also_processed
    }


def is_listing(batch: SourceBatch) -> bool:
    """The last batch of a pull that read every message whole: its cursor is the folder's listing."""
    return batch.cursor is not None and not batch.records and not batch.rejections and not batch.input_key


def pull(
    source: EmailCsvSource,
    processed: set[str] | None = None,
    *,
    markers: bool = False,
    cursor: dict[str, object] | None = None,
    listing: bool = False,
) -> list[SourceBatch]:
    done = processed if processed is not None else set()
    context = PullContext(cursor=cursor, started_at=datetime.now(UTC), is_processed=done.__contains__)
    return [
        batch
        for batch in source.pull(context)
        if (markers or not is_read_marker(batch)) and (listing or not is_listing(batch))
    ]


def pos_of(batches: list[SourceBatch]):
    return [record.po for batch in batches for record in batch.records]


def message(
    csv_text: str | None = CSV,
    *,
    message_id: str | None = "<m1@buyer.example>",
    sender: str = "buyer@buyer.example",
    date: str = "Thu, 01 Jan 2026 10:00:00 +0000",
    extra: list[tuple[bytes, str, str, str]] = (),
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "orders@vendor.example"
    mail["Subject"] = "PO"
    mail["Date"] = date
    if message_id:
        mail["Message-ID"] = message_id
    mail.set_content("See attachment.\n")
    if csv_text is not None:
        mail.add_attachment(csv_text, subtype="csv", filename="po.csv")
    for data, maintype, subtype, filename in extra:
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


# ---------------------------------------------------------------------------- the example inbox


def test_example_inbox_yields_the_seven_whole_pos_oldest_message_first(inbox: Path):
    pos = pos_of(pull(make_source(inbox)))
    assert [po.po_number for po in pos] == [
        "ACME-PO-1001",
        "ACME-PO-1002",
        "ACME-PO-1003",  # 2026-01-05
        # INI-7781 (2026-02-01) has a refused row: held whole, not stored without it
        "UMB-2026-044",  # 2026-03-01
        "4500012345",
        "4500012399",  # 2026-06-20
        "WE-PO-0077",  # 2026-09-20
        "4500012399",  # 2026-10-15, the revision
    ]


def test_the_later_revision_of_4500012399_comes_after_the_original(inbox: Path):
    versions = [po for po in pos_of(pull(make_source(inbox))) if po.po_number == "4500012399"]
    assert [(po.revision, po.lines[0].quantity) for po in versions] == [(1, 10), (2, 24)]
    assert versions[1].source_updated_at == datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
    assert versions[0].key == versions[1].key


def test_example_inbox_numbers_match_the_scenario(inbox: Path):
    pos = {po.po_number: po for po in pos_of(pull(make_source(inbox)))}

    def summary(number):
        po = pos[number]
        lines = [(ln.line_no, ln.sku, ln.quantity, ln.unit_price.amount) for ln in po.lines]
        return po.buyer_id, po.currency, po.payment_terms.code, po.term_start, po.term_end, lines

    year = (datetime(2026, 1, 1).date(), datetime(2026, 12, 31).date())
    globex = (datetime(2026, 7, 1).date(), datetime(2027, 6, 30).date())
    assert summary("ACME-PO-1001") == (
        "acme.example",
        "USD",
        "NET30",
        *year,
        [(1, "PLAN-PRO", 600, Decimal("40.00"))],
    )
    assert summary("ACME-PO-1002") == (
        "acme.example",
        "USD",
        "NET30",
        *year,
        [(1, "ADDON-SSO", 12, Decimal("10.00"))],
    )
    assert summary("ACME-PO-1003") == (
        "acme.example",
        "USD",
        "NET30",
        *year,
        [(1, "ADDON-SSO", 12, Decimal("10.00"))],
    )
    assert summary("4500012345") == (
        "globex.example",
        "EUR",
        "NET45",
        *globex,
        [(1, "CLD-ENT-ANNUAL", 1, Decimal("24000.00"))],
    )
    assert "INI-7781" not in pos  # held whole for its refused row
    assert summary("UMB-2026-044") == (
        "umbrella.example",
        "USD",
        "NET60",
        *year,
        [(1, "PLAN-ENT", 12, Decimal("1500.00"))],
    )
    acme = pos["ACME-PO-1001"]
    assert acme.bill_to is not None
    assert (acme.bill_to.name, acme.bill_to.lines, acme.bill_to.city) == (
        "Acme Corp",
        ("100 Main St",),
        "Springfield",
    )
    assert (acme.bill_to.postal_code, acme.bill_to.country) == ("62701", "US")
    assert pos["4500012345"].lines[0].description == "Jahreslizenz für Müller"
    assert pos["4500012345"].payment_terms == PaymentTerms(code="NET45", net_days=45)


def test_the_bad_initech_row_is_reported_and_the_po_held_whole(inbox: Path):
    batches = pull(make_source(inbox))
    problems = [p for batch in batches for p in batch.rejections]
    problem, held = problems
    assert problem.document == "initech-po.eml#INI-7781.csv"
    assert problem.location == "row 4"
    assert problem.field == "Quantity"
    assert problem.value == "ten"
    assert problem.reason.startswith("quantity:")
    [initech] = [b for b in batches if b.document == problem.document]
    assert initech.records == []
    assert (held.document, held.location, held.value) == (problem.document, "rows 2-4", "INI-7781")
    assert "held whole: row 4" in held.reason


def test_po_carries_message_date_attachment_hash_and_raw_rows(inbox: Path):
    batches = pull(make_source(inbox))
    acme = batches[0]
    assert acme.document == "acme-purchase-orders.eml#acme-pos-2026-01-05.csv"
    message_id, _, sha = acme.input_key.partition("|")
    assert message_id == "<20260105091500.1001@acme.example>"
    record = acme.records[0]
    assert record.po.raw_sha256 == sha
    assert record.po.source_updated_at == datetime(2026, 1, 5, 15, 15, tzinfo=UTC)
    assert record.document == acme.document
    assert record.raw.splitlines()[0].startswith("PO Number,Line,Supplier Part ID")
    assert len(record.raw.splitlines()) == 2


def test_the_attachment_hash_is_of_the_attachment_bytes(inbox: Path):
    data = b"PO Number,SKU,Quantity,Unit Price,Currency\r\nP-9,S,1,1,USD\r\n"
    (inbox / "z.eml").write_bytes(message(extra=[(data, "text", "csv", "bytes.csv")], csv_text=None))
    [batch] = [b for b in pull(make_source(inbox)) if b.document == "z.eml#bytes.csv"]
    assert batch.records[0].po.raw_sha256 == hashlib.sha256(data).hexdigest()


def test_processed_inputs_are_skipped(inbox: Path):
    source = make_source(inbox)
    first = pull(source)
    keys = {b.input_key for b in first}
    assert len(keys) == len(first) == 6
    assert pull(source, processed=keys) == []
    acme_key = first[0].input_key
    again = pull(source, processed=keys - {acme_key})
    assert [b.input_key for b in again] == [acme_key]


def test_the_source_is_a_po_source_that_can_fetch_one_po(inbox: Path):
    source = make_source(inbox)
    assert isinstance(source, POSource)
    assert source.name == "inbox"
    assert [r.po.revision for r in source.fetch("4500012399")] == [1, 2]
    assert source.fetch("NO-SUCH-PO") == []


# ---------------------------------------------------------------------------- folder layouts


def test_a_maildir_is_read_from_cur_and_new_but_not_tmp(tmp_path: Path):
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    files = sorted(EXAMPLE_INBOX.glob("*.eml"))
    for index, path in enumerate(files):
        folder = "cur" if index % 2 else "new"
        shutil.copy(path, maildir / folder / f"17000000{index}.M{index}P1.host:2,S")
    (maildir / "tmp" / "1700000099.M99P1.host").write_bytes(message(message_id="<in-delivery@x>"))
    pos = pos_of(pull(make_source(maildir)))
    assert len(pos) == 8  # INI-7781 is held whole
    assert "P-1" not in {po.po_number for po in pos}


def test_a_plain_folder_reads_only_eml_files(inbox: Path):
    (inbox / "notes.txt").write_bytes(message(message_id="<notes@x>"))
    (inbox / ".hidden.eml").write_bytes(message(message_id="<hidden@x>"))
    assert "P-1" not in {po.po_number for po in pos_of(pull(make_source(inbox)))}


def test_relative_maildir_resolves_against_the_base_dir(inbox: Path):
    config = EmailCsvConfig(name="inbox", type="email-csv", maildir=Path("inbox"))
    source = EmailCsvSource(config, AdapterContext(base_dir=inbox.parent))
    assert len(pos_of(pull(source))) == 8


def test_a_missing_folder_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="maildir"):
        make_source(tmp_path / "absent")


def test_a_mapping_given_as_a_relative_path(inbox: Path):
    shutil.copy(
        Path(__file__).resolve().parents[2] / "mappings" / "csv_default.toml", inbox.parent / "mine.toml"
    )
    source = make_source(inbox, mapping="mine.toml")
    assert source.mapping.name == "mine"
    assert len(pos_of(pull(source))) == 8


def test_an_unknown_mapping_is_a_config_error(inbox: Path):
    with pytest.raises(ConfigError):
        make_source(inbox, mapping="no_such_mapping")


# ---------------------------------------------------------------------------- message variations


def test_message_without_message_id_is_keyed_by_the_file_hash(tmp_path: Path):
    data = message(message_id=None)
    (tmp_path / "a.eml").write_bytes(data)
    [batch] = pull(make_source(tmp_path))
    file_sha = hashlib.sha256(data).hexdigest()
    assert batch.input_key.startswith(f"{file_sha}|")
    assert [po.po_number for po in pos_of([batch])] == ["P-1"]


def test_non_csv_attachments_are_ignored_and_a_message_without_an_order_is_reported_once(tmp_path: Path):
    pdf = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application", "pdf", "po.pdf")
    (tmp_path / "a.eml").write_bytes(message(csv_text=None, extra=[pdf]))
    (tmp_path / "b.eml").write_bytes(message(message_id="<m2@x>", extra=[pdf]))
    batches = pull(make_source(tmp_path))
    assert [b.document for b in batches] == ["a.eml", "b.eml#po.csv"]
    [problem] = batches[0].rejections
    assert problem.reason == "no CSV or cXML attachment" and batches[0].input_key


def test_an_excel_typed_attachment_and_a_csv_named_attachment_are_read(tmp_path: Path):
    data = CSV.encode()
    extra = [
        (data.replace(b"P-1", b"P-2"), "application", "vnd.ms-excel", "export"),
        (data.replace(b"P-1", b"P-3"), "application", "octet-stream", "PO.CSV"),
    ]
    (tmp_path / "a.eml").write_bytes(message(csv_text=None, extra=extra))
    assert [po.po_number for po in pos_of(pull(make_source(tmp_path)))] == ["P-2", "P-3"]


def test_the_same_attachment_twice_in_a_message_is_read_once(tmp_path: Path):
    (tmp_path / "a.eml").write_bytes(message(extra=[(CSV.encode(), "text", "csv", "copy.csv")]))
    assert len(pull(make_source(tmp_path))) == 1


def test_an_undecodable_attachment_is_one_rejected_batch_with_a_key(tmp_path: Path):
    (tmp_path / "a.eml").write_bytes(
        message(csv_text=None, extra=[(b"\x00\x81\x8d", "text", "csv", "bin.csv")])
    )
    source = make_source(tmp_path)
    [batch] = pull(source)
    assert batch.records == []
    [problem] = batch.rejections
    assert problem.document == "a.eml#bin.csv"
    assert "not a readable CSV file" in problem.reason
    assert batch.input_key.startswith("<m1@buyer.example>|")
    assert pull(source, processed={batch.input_key}) == []


def test_a_file_that_is_not_an_email_is_one_rejected_batch_with_a_key(tmp_path: Path):
    (tmp_path / "junk.eml").write_bytes(b"")
    (tmp_path / "ok.eml").write_bytes(message())
    source = make_source(tmp_path)
    batches = pull(source)
    junk = [b for b in batches if b.document == "junk.eml"]
    assert len(junk) == 1 and junk[0].input_key and junk[0].rejections
    assert "not an e-mail" in junk[0].rejections[0].reason
    assert pos_of(batches)[0].po_number == "P-1"
    assert pull(source, processed={b.input_key for b in batches}) == []


def test_messages_are_ordered_by_date_header_in_utc_not_file_name(tmp_path: Path):
    newer = CSV.replace("1,10.00", "5,10.00")
    # 23:45Z is later than 00:30+01:00 (23:30Z) although its local day is earlier.
    (tmp_path / "a.eml").write_bytes(
        message(newer, message_id="<new@x>", date="Thu, 01 Jan 2026 23:45:00 +0000")
    )
    (tmp_path / "b.eml").write_bytes(
        message(CSV, message_id="<old@x>", date="Fri, 02 Jan 2026 00:30:00 +0100")
    )
    assert [po.lines[0].quantity for po in pos_of(pull(make_source(tmp_path)))] == [1, 5]


def test_buyer_id_comes_from_the_csv_then_the_sender_map_then_the_domain(tmp_path: Path):
    (tmp_path / "a.eml").write_bytes(message(message_id="<a@x>", sender="Jo <Jo@EU.Acme.Example>"))
    (tmp_path / "b.eml").write_bytes(message(message_id="<b@x>", sender="ap@initech.example"))
    (tmp_path / "c.eml").write_bytes(message(message_id="<c@x>", sender="x@other.example"))
    with_column = CSV.replace("Currency\n", "Currency,Buyer ID\n").replace("USD\n", "USD,B-1\n")
    (tmp_path / "d.eml").write_bytes(message(with_column, message_id="<d@x>", sender="x@other.example"))
    source = make_source(tmp_path, senders={"acme.example": "ACME", "AP@initech.example": "INITECH"})
    assert [po.buyer_id for po in pos_of(pull(source))] == ["ACME", "INITECH", "other.example", "B-1"]


def test_sender_map_prefers_the_address_over_the_domain():
    senders = {"acme.example": "ACME", "ceo@acme.example": "ACME-CEO"}
    assert buyer_for("CEO@acme.example", senders) == "ACME-CEO"
    assert buyer_for("ap@acme.example", senders) == "ACME"
    assert buyer_for("ap@Globex.Example", senders) == "globex.example"


# ---------------------------------------------------------------------------- entry points for the CLI


def test_parse_message_file_returns_every_batch_of_one_message():
    batches = parse_message_file(
        EXAMPLE_INBOX / "globex-bestellung.eml", load_mapping("csv_default"), source="cli", senders={}
    )
    assert [po.po_number for po in pos_of(batches)] == ["4500012345", "4500012399"]
    assert batches[0].records[0].po.source == "cli"


def test_parse_csv_file_reads_a_bare_csv(tmp_path: Path):
    path = tmp_path / "po.csv"
    path.write_bytes(("\ufeff" + CSV).encode())
    batch = parse_csv_file(path, load_mapping("csv_default"), source="cli", buyer_id="acme")
    assert [(po.po_number, po.buyer_id) for po in pos_of([batch])] == [("P-1", "acme")]
    assert batch.document == "po.csv"
    assert batch.input_key == f"po.csv|{hashlib.sha256(path.read_bytes()).hexdigest()}"


def test_parse_csv_file_reports_a_missing_file(tmp_path: Path):
    batch = parse_csv_file(tmp_path / "absent.csv", load_mapping("csv_default"), source="cli", buyer_id="")
    assert batch.records == [] and "cannot read" in batch.rejections[0].reason


@pytest.mark.parametrize("sender", ["g: h: a@b;;", "g:a@b;x@y"])
def test_a_from_header_in_broken_group_syntax_is_quarantined_naming_it_and_the_next_message_is_read(
    tmp_path: Path, sender: str
):
    good = message(message_id="<m2@x>", date="Fri, 02 Jan 2026 10:00:00 +0000")
    (tmp_path / "b.eml").write_bytes(good)
    bad = message().replace(b"From: buyer@buyer.example", b"From: " + sender.encode())
    (tmp_path / "a.eml").write_bytes(bad)
    batches = pull(make_source(tmp_path))
    problems = [p for b in batches for p in b.rejections]
    assert [(p.document, p.field, p.value) for p in problems] == [("a.eml", "From", sender)], problems
    assert [po.po_number for po in pos_of(batches)] == ["P-1"]


# ---------------------------------------------------------------------- messages read whole before


def test_a_message_read_whole_is_skipped_next_time_without_parsing_it(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.email_csv_parsing as email_csv

    source = make_source(inbox)
    first = pull(source, markers=True)
    assert not any(is_read_marker(b) for b in first)  # the marks ride on the messages' batches
    marked = [b for b in first if read_whole(b)]
    messages = [b.document.partition("#")[0] for b in marked]
    # Every example message but Initech's (whose PO is held for a refused row) is read whole.
    assert sorted(messages) == sorted(p.name for p in inbox.glob("*.eml") if p.name != "initech-po.eml")
    for batch, name in zip(marked, messages, strict=True):  # each on its message's last batch
        later = first[first.index(batch) + 1 :]
        assert batch.records and not any(b.document.partition("#")[0] == name for b in later)
    parsed: list[str] = []
    real = email_csv.message_order_batches

    def counting(raw: bytes, name: str, **kwargs: object):  # type: ignore[no-untyped-def]
        parsed.append(name)
        return real(raw, name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(email_csv, "message_order_batches", counting)
    done = committed(first)
    assert pull(source, done, markers=True) == []
    assert parsed == ["initech-po.eml"]  # only the message with a quarantined row is read again
    # ... and stays unmarked, so `quarantine retry` (which forgets its input) finds it again.
    held = next(b for b in first if b.rejections)
    retried = pull(source, done - {str(held.input_key)}, markers=True)
    assert [b.input_key for b in retried] == [held.input_key]


def test_a_new_or_changed_message_file_is_read_again(inbox: Path) -> None:
    source = make_source(inbox)
    done = committed(pull(source, markers=True))
    (inbox / "new.eml").write_bytes(message(message_id="<new@buyer.example>"))
    changed = inbox / "umbrella-po.eml"
    changed.write_bytes(b"X-Resent: yes\r\n" + changed.read_bytes())
    again = pull(source, done, markers=True)
    # The new message is read and marked; the changed one is read, but its attachment is known
    # already, so it gives nothing new and (some of its input being processed before) no mark.
    assert [(b.document, len(b.records), read_whole(b)) for b in again] == [("new.eml#po.csv", 1, True)]


def test_an_unchanged_folder_is_known_by_its_files_stat_without_reading_them(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(inbox)
    done = committed(pull(source, markers=True))
    assert any(key.endswith("|stat") for key in done)
    read: list[str] = []
    real = Path.read_bytes

    def counting(path: Path) -> bytes:
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", counting)
    assert pull(source, done, markers=True) == []
    assert set(read) == {"initech-po.eml"}  # only the message with a quarantined row


def test_a_touched_message_is_known_by_its_digest_and_gets_its_new_stat_marked(inbox: Path) -> None:
    source = make_source(inbox)
    done = committed(pull(source, markers=True))
    touched = inbox / "umbrella-po.eml"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 1_000_000_000))
    again = pull(source, done, markers=True)
    # Not parsed again (its digest is known): one marker naming the file as it now stands.
    assert [(b.document, b.records, is_stat_remark(b)) for b in again] == [(inbox.name, [], True)]
    (mark,) = again[0].also_processed
    assert mark.startswith("umbrella-po.eml|") and mark not in done
    assert pull(source, done | committed(again), markers=True) == []


def test_a_folder_moved_whole_is_marked_again_a_slice_at_a_time_without_a_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.email_csv

    monkeypatch.setattr(adapters.email_csv, "_LISTED_PER_LOOKUP", 3)
    first = tmp_path / "first"
    first.mkdir()
    for n in range(7):
        csv_text = CSV.replace("P-1,PLAN-PRO,1,", f"P-{n},PLAN-PRO,1,")
        (first / f"m{n}.eml").write_bytes(message(csv_text, message_id=f"<m{n}@x>"))
    done = committed(pull(make_source(first), markers=True))
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in sorted(first.iterdir()):  # copied: every file a new inode and mtime
        (moved / path.name).write_bytes(path.read_bytes())
    parsed: list[str] = []
    real = adapters.email_csv.message_file_batches

    def counting(path: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        parsed.append(path.name)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(adapters.email_csv, "message_file_batches", counting)
    again = pull(make_source(moved), done, markers=True)
    assert parsed == []
    # One batch per slice listed (3 + 3 + 1 files), not one per message.
    assert [len(b.also_processed) for b in again] == [3, 3, 1]
    assert all(is_stat_remark(b) for b in again)
    assert pull(make_source(moved), done | committed(again), markers=True) == []


def test_without_stat_markers_a_state_from_before_them_reads_each_file_once_more(inbox: Path) -> None:
    source = make_source(inbox)
    first = pull(source, markers=True)
    digests_only = {key for key in committed(first) if not key.endswith("|stat")}  # an older version's
    again = pull(source, digests_only, markers=True)
    assert again and all(is_stat_remark(b) for b in again)


def test_a_message_is_not_marked_read_while_one_of_its_batches_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "bad.eml").write_bytes(
        message("PO Number,SKU,Quantity,Unit Price,Currency\nP-1,X,one,1,USD\n")
    )
    batches = pull(make_source(tmp_path), markers=True)
    assert batches and all(b.rejections for b in batches)
    assert not any(is_read_marker(b) for b in batches)


def test_a_folder_listed_in_slices_is_still_read_oldest_message_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adapters.email_csv

    monkeypatch.setattr(adapters.email_csv, "_LISTED_PER_LOOKUP", 2)
    for n in range(7):  # file names in the opposite order to the dates
        csv_text = CSV.replace("P-1,PLAN-PRO,1,", f"P-{n},PLAN-PRO,1,")
        date = f"Thu, {20 - n:02d} Jan 2026 10:00:00 +0000"
        (tmp_path / f"m{n}.eml").write_bytes(message(csv_text, message_id=f"<m{n}@x>", date=date))
    asked: list[int] = []
    done: set[str] = set()

    def among(keys: object) -> set[str]:
        wanted = list(keys)  # type: ignore[call-overload]
        asked.append(len(wanted))
        return done & set(wanted)

    context = PullContext(
        cursor=None, started_at=datetime.now(UTC), is_processed=done.__contains__, processed_many=among
    )
    batches = [b for b in make_source(tmp_path).pull(context) if not is_read_marker(b)]
    assert [po.po_number for po in pos_of(batches)] == [f"P-{n}" for n in reversed(range(7))]
    assert asked and max(asked) <= 2  # looked up a slice at a time


def test_a_message_is_marked_read_whole_by_its_last_batch(tmp_path: Path) -> None:
    other = CSV.replace("P-1,", "P-2,").encode()
    (tmp_path / "two.eml").write_bytes(message(extra=[(other, "text", "csv", "more.csv")]))
    batches = pull(make_source(tmp_path), markers=True)
    # One transaction per attachment, the marks committed with the last: none on its own.
    assert [(b.document, [r.po.po_number for r in b.records], read_whole(b)) for b in batches] == [
        ("two.eml#po.csv", ["P-1"], False),
        ("two.eml#more.csv", ["P-2"], True),
    ]
    assert pull(make_source(tmp_path), committed(batches), markers=True) == []


def test_an_attachment_repeated_in_its_message_is_read_once_and_the_message_marked(tmp_path: Path) -> None:
    (tmp_path / "twice.eml").write_bytes(message(extra=[(CSV.encode(), "text", "csv", "again.csv")]))
    batches = pull(make_source(tmp_path), markers=True)
    assert [(b.document, len(b.records), read_whole(b)) for b in batches] == [("twice.eml#po.csv", 1, True)]


def test_a_message_whose_last_attachment_is_refused_is_not_marked(tmp_path: Path) -> None:
    refused = b"PO Number,SKU,Quantity,Unit Price,Currency\nP-2,X,one,1,USD\n"
    (tmp_path / "half.eml").write_bytes(message(extra=[(refused, "text", "csv", "bad.csv")]))
    batches = pull(make_source(tmp_path), markers=True)
    assert [(len(b.records), bool(b.rejections), read_whole(b)) for b in batches] == [
        (1, False, False),
        (0, True, False),
    ]


def _clean_folder(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for n in (1, 2):
        text = CSV.replace("P-1,", f"P-{n},")
        (folder / f"m{n}.eml").write_bytes(message(text, message_id=f"<m{n}@buyer.example>"))


def _refusing(done: set[str]) -> set[str]:
    class NoLookups(set[str]):
        def __contains__(self, key: object) -> bool:
            raise AssertionError(f"looked up {key}")

    return NoLookups(done)


def test_a_folder_read_whole_is_known_next_time_by_its_listing_without_a_lookup(tmp_path: Path) -> None:
    _clean_folder(tmp_path / "in")
    source = make_source(tmp_path / "in")
    first = pull(source, markers=True, listing=True)
    # Every message's batches come first, then the listing, committed after all of them.
    assert [is_listing(b) for b in first] == [False, False, True]
    cursor = first[-1].cursor
    assert pull(source, _refusing(committed(first)), markers=True, listing=True, cursor=cursor) == []


@pytest.mark.parametrize("change", ["new", "touched", "gone"])
def test_a_folder_listed_otherwise_is_looked_at_message_by_message(tmp_path: Path, change: str) -> None:
    folder = tmp_path / "in"
    _clean_folder(folder)
    source = make_source(folder)
    first = pull(source, markers=True, listing=True)
    done, cursor = committed(first), first[-1].cursor
    if change == "new":
        (folder / "m3.eml").write_bytes(message(CSV.replace("P-1,", "P-3,"), message_id="<m3@buyer.example>"))
    elif change == "touched":
        stat = (folder / "m1.eml").stat()
        os.utime(folder / "m1.eml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        (folder / "m2.eml").unlink()
    again = pull(source, done, markers=True, listing=True, cursor=cursor)
    assert again[-1].cursor not in (None, cursor)
    expected = {"new": [["P-3"]], "touched": [[]], "gone": []}[change]
    assert [[r.po.po_number for r in b.records] for b in again[:-1]] == expected
    later = pull(source, _refusing(done | committed(again)), markers=True, cursor=again[-1].cursor)
    assert later == []


def test_a_folder_holding_a_quarantined_message_keeps_no_listing(inbox: Path) -> None:
    source = make_source(inbox)
    first = pull(source, markers=True, listing=True)
    assert any(b.rejections for b in first) and not any(is_listing(b) for b in first)
    # So the message stays where `quarantine retry` finds it: read again on every pull.
    held = next(b for b in first if b.rejections)
    again = pull(source, committed(first) - {str(held.input_key)}, markers=True, listing=True)
    assert [b.input_key for b in again] == [held.input_key]
