"""Bank files in and out, the format chosen from the path.

=====================  ===============================================================
path                   format
=====================  ===============================================================
``folder/``            a bank folder: ``skills.json`` manifest + ``<skill_id>.json``
``*.json``             per-skill content file or bank bundle (`item_bank.content`)
``*.csv``              the DESIGN.md item parameters CSV when the header has ``model``
                       and no ``stem``; otherwise the content CSV
``*.zip``              IMS QTI 2.1 content package (`item_bank.qti`)
=====================  ===============================================================
"""

from __future__ import annotations

import csv
from pathlib import Path

from irt import Bank
from irt.io import FormatError, read_items_csv, write_items_csv
from item_bank.content import (
    BankDocument,
    parameter_columns,
    read_bank_json,
    read_content_csv,
    read_manifest_dir,
    records_from_table,
    write_bank_json,
    write_content_csv,
)
from item_bank.qti import read_qti_zip, write_qti_zip

EXPORT_KINDS = ("json", "csv-params", "csv-content", "qti")


def _csv_kind(path: Path) -> str:
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), None) or []
    cols = {h.strip() for h in header}
    if "stem" in cols:
        return "csv-content"
    if "item_id" in cols:
        return "csv-params"
    raise FormatError(f"{path} line 1: neither a content CSV (needs 'id', 'stem', ...) nor a "
                      f"parameters CSV (needs 'item_id', 'model', ...); header {header}")


def read_bank_file(path: str | Path, *, default_skill: str | None = None,
                   provisional: bool | None = None, strict: bool = False,
                   prefix: str | None = None) -> BankDocument:
    """Read any supported bank file or folder into a validated `BankDocument`.

    QTI packages: ``default_skill`` for items that name none, ``strict`` to refuse a package
    with items Proficio cannot deliver (else they are skipped and listed), ``prefix`` before
    every item id (`item_bank.qti.read_qti_zip`)."""
    p = Path(path)
    if p.is_dir():
        return read_manifest_dir(p)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    if suffix == ".json":
        return read_bank_json(p)
    if suffix == ".zip":
        return read_qti_zip(p, default_skill=default_skill, strict=strict, prefix=prefix)
    if suffix == ".csv":
        if _csv_kind(p) == "csv-content":
            return read_content_csv(p)
        table = read_items_csv(p)
        return BankDocument(str(p), (), (), records_from_table(table, str(p), provisional))
    raise FormatError(f"{p}: unknown bank file type {suffix!r} (expected .json, .csv, .zip or a "
                      f"folder)")


def export_kind(path: str | Path, kind: str | None = None) -> str:
    if kind is not None:
        if kind not in EXPORT_KINDS:
            raise ValueError(f"unknown export kind {kind!r}; expected one of {EXPORT_KINDS}")
        return kind
    suffix = Path(path).suffix.lower()
    kinds = {".json": "json", ".csv": "csv-params", ".zip": "qti"}
    if suffix not in kinds:
        raise ValueError(f"cannot tell the format from {str(path)!r}; use .json, .csv or .zip")
    return kinds[suffix]


def write_bank_file(path: str | Path, doc: BankDocument, kind: str | None = None, *,
                    plain: bool = False) -> str:
    """Write ``doc`` in the format of ``kind`` (default: from the extension); returns the kind.

    ``plain`` limits the parameters CSV to the DESIGN.md columns (``item_id … d``, ``se_*``,
    ``n_responses``), dropping Proficio's ``provisional`` flag, for tools that accept nothing
    else (e.g. ``proficio calibrate --items/--anchors``).
    """
    kind = export_kind(path, kind)
    if kind == "json":
        write_bank_json(path, doc)
    elif kind == "csv-content":
        write_content_csv(path, doc.items)
    elif kind == "qti":
        write_qti_zip(path, doc)
    else:
        recs = doc.parameters
        if not recs:
            raise ValueError("the bank has no parameters to export")
        extra = parameter_columns(recs)
        if plain:
            extra.pop("provisional")
        write_items_csv(path, Bank.from_params(r.params for r in recs), extra)
    return kind
