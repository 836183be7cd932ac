"""Reading what to calibrate: the model, skill and category count of every item.

An item spec file is a DESIGN.md item parameters CSV whose parameter columns may be empty:
``item_id`` is required; ``model``, ``skill`` and ``n_categories`` are optional; for ``grm`` and
``gpcm`` items without ``n_categories`` the filled ``b1 … bK`` columns give ``K + 1`` categories
(otherwise the highest observed response decides). Parameter and calibration-output columns
(``a, b, c, d, b1…, se_*, n_responses``) are allowed and ignored; any other column is an error.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from calibration.results import ItemSpec
from irt import POLYTOMOUS_MODELS
from irt.io import FormatError, csv_records, read_item_header

_KNOWN = {"item_id", "skill", "model", "n_categories", "a", "b", "c", "d", "n_responses",
          # Proficio's own columns (bank export, proficio recalibrate --out): read by others
          "provisional", "status", "role", "action", "reason"}
_PATTERN = re.compile(r"^(b\d+|se_[a-z]+\d*)$")


def read_item_specs(path: str | Path, default_model: str = "2pl",
                    default_skill: str = "default") -> list[ItemSpec]:
    """Item specs from ``path``; raises `irt.io.FormatError` naming the line and field."""
    name = str(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = read_item_header(reader, name)
        unknown = [h for h in header if h not in _KNOWN and not _PATTERN.match(h)]
        if unknown:
            raise FormatError(f"{name} line 1: unknown column {unknown[0]!r}")
        thresholds = [h for h in header if re.fullmatch(r"b\d+", h)]
        specs: list[ItemSpec] = []
        seen: dict[str, int] = {}
        for lineno, rec in csv_records(reader, header, name):
            iid = rec["item_id"]
            if not iid:
                raise FormatError(f"{name} line {lineno}: field 'item_id' is empty")
            if iid in seen:
                raise FormatError(f"{name} line {lineno}: duplicate item_id {iid!r} (first on "
                                  f"line {seen[iid]})")
            seen[iid] = lineno
            model = (rec.get("model") or default_model).lower()
            n_cat: int | None = None
            if rec.get("n_categories"):
                try:
                    n_cat = int(rec["n_categories"])
                except ValueError:
                    raise FormatError(f"{name} line {lineno}: field 'n_categories' is not an "
                                      f"integer: {rec['n_categories']!r}") from None
            elif model in POLYTOMOUS_MODELS:
                filled = sum(1 for h in thresholds if rec.get(h))
                n_cat = filled + 1 if filled else None
            try:
                specs.append(ItemSpec(iid, model, rec.get("skill") or default_skill, n_cat))
            except ValueError as exc:
                raise FormatError(f"{name} line {lineno}: {exc}") from None
    if not specs:
        raise FormatError(f"{name}: no items")
    return specs
