"""Declarative mapping of PO spreadsheets (one row per PO line) to canonical purchase orders.

A mapping profile (`mappings/<name>.toml`) names, for each canonical field, the column that holds
it and its aliases, plus the date formats and the decimal separator. `rows_to_pos` groups the rows
of a table by PO number and turns each group into a `PurchaseOrder`; every bad cell becomes an
`InputProblem` naming the document, the row, the column as written and the value, and only the
row it is in is dropped.

The package: `profile` (the profile model and its loading), `values` (cell parsers), `rows`
(header matching, row grouping by PO and version, and the POs or problems they give).
"""

from mappings.csv_mapping.profile import CsvMapping, CsvTable, FieldSpec, is_mapping_name, load_mapping
from mappings.csv_mapping.rows import rows_to_pos
from mappings.csv_mapping.values import parse_date, parse_decimal, parse_payment_terms

__all__ = [
    "CsvMapping",
    "CsvTable",
    "FieldSpec",
    "is_mapping_name",
    "load_mapping",
    "parse_date",
    "parse_decimal",
    "parse_payment_terms",
    "rows_to_pos",
]
