"""The DESIGN.md file formats: item parameters CSV and long-format responses CSV.

Items: ``item_id,skill,model,a,b,c,d,b1,b2,…`` (header required; extra columns such as
``se_a`` or ``n_responses`` are kept as `ItemTable.extra`). Responses:
``person_id,item_id,response`` (header required; extra columns are kept on request).

Errors are `FormatError` (a `ValueError`) whose message names the file, the line and the field.
Line numbers count the header as line 1.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from irt.params import POLYTOMOUS_MODELS, Bank, ItemParams
from irt.responses import SparseResponses

ITEM_COLUMNS = ("item_id", "skill", "model", "a", "b", "c", "d")
RESPONSE_COLUMNS = ("person_id", "item_id", "response")
_THRESHOLD = re.compile(r"^b(\d+)$")


class FormatError(ValueError):
    """Malformed input file; the message names the file, line and field."""


def _name(source: str | Path | io.TextIOBase) -> str:
    return str(source) if isinstance(source, str | Path) else getattr(source, "name", "<input>")


def _open(source: str | Path | io.TextIOBase, mode: str = "r"):
    """A context manager over a path (opened here) or an open text stream (left open)."""
    if isinstance(source, str | Path):
        encoding = "utf-8-sig" if mode == "r" else "utf-8"
        return open(source, mode, newline="", encoding=encoding)
    return contextlib.nullcontext(source)


def read_item_header(reader: Iterator[list[str]], name: str) -> list[str]:
    """The stripped header of an items-like CSV: present, with ``item_id``, no duplicates."""
    header = next(reader, None)
    if not header:
        raise FormatError(f"{name}: empty file; expected a header starting with 'item_id'")
    header = [h.strip() for h in header]
    if "item_id" not in header:
        raise FormatError(f"{name} line 1: missing column 'item_id' in header {header}")
    if len(set(header)) != len(header):
        raise FormatError(f"{name} line 1: duplicate column names in header {header}")
    return header


def csv_records(reader: Iterator[list[str]], header: list[str], name: str
                ) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, {column: stripped cell})`` per non-blank row; a row with the wrong
    number of fields raises `FormatError` naming its line."""
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise FormatError(f"{name} line {lineno}: {len(row)} fields, header has "
                              f"{len(header)}")
        yield lineno, {h: cell.strip() for h, cell in zip(header, row, strict=True)}


@dataclass(frozen=True, eq=False)
class ItemTable:
    """Items read from a parameters file, with any extra columns (``se_a``, ``n_responses``…)."""

    bank: Bank
    extra: dict[str, list[str]] = field(default_factory=dict)
    lines: tuple[int, ...] = ()  # the file line of each item (header = line 1)


def read_items_csv(source: str | Path | io.TextIOBase, default_model: str | None = None,
                   default_skill: str = "default") -> ItemTable:
    """Read an item parameters CSV into a `Bank` (validated item by item)."""
    name = _name(source)
    with _open(source) as f:
        reader = csv.reader(f)
        header = read_item_header(reader, name)
        if "model" not in header and default_model is None:
            raise FormatError(f"{name} line 1: missing column 'model' in header {header}")
        thresholds = sorted((int(m.group(1)), h) for h in header if (m := _THRESHOLD.match(h)))
        known = set(ITEM_COLUMNS) | {h for _, h in thresholds}
        extra_cols = [h for h in header if h not in known]
        items: list[ItemParams] = []
        lines: list[int] = []
        extra: dict[str, list[str]] = {h: [] for h in extra_cols}
        seen: dict[str, int] = {}
        for lineno, rec in csv_records(reader, header, name):
            item_id = rec["item_id"]
            if item_id in seen:
                raise FormatError(f"{name} line {lineno}: duplicate item_id {item_id!r} "
                                  f"(first on line {seen[item_id]})")
            seen[item_id] = lineno
            model = (rec.get("model") or default_model or "").lower()
            try:
                kwargs: dict = {"item_id": item_id, "model": model,
                                "skill": rec.get("skill") or default_skill}
                for col in ("a", "b", "c", "d"):
                    if rec.get(col):
                        kwargs[col] = _number(rec[col], col)
                if model in POLYTOMOUS_MODELS:
                    kwargs.pop("b", None)
                    kwargs.pop("c", None)
                    kwargs.pop("d", None)
                    values = [(k, rec[h]) for k, h in thresholds if rec.get(h)]
                    expected = list(range(1, len(values) + 1))
                    if [k for k, _ in values] != expected:
                        raise ValueError(f"item {item_id!r}: thresholds must fill b1..bK without "
                                         f"gaps")
                    kwargs["thresholds"] = tuple(_number(v, f"b{k}") for k, v in values)
                else:
                    if "b" not in kwargs:
                        raise ValueError(f"item {item_id!r}: field 'b' is required for {model}")
                    if "a" not in kwargs and model not in ("1pl", "rasch"):
                        raise ValueError(f"item {item_id!r}: field 'a' is required for {model}")
                items.append(ItemParams(**kwargs))
                lines.append(lineno)
            except ValueError as exc:
                raise FormatError(f"{name} line {lineno}: {exc}") from None
            for h in extra_cols:
                extra[h].append(rec[h])
    if not items:
        raise FormatError(f"{name}: no items")
    return ItemTable(Bank.from_params(items), extra, tuple(lines))


def _number(text: str, col: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"field {col!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"field {col!r} must be finite, got {text!r}")
    return value


def _fmt(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.6g}"


def write_items_csv(target: str | Path | io.TextIOBase, bank: Bank,
                    extra: Mapping[str, Sequence] | None = None) -> None:
    """Write ``bank`` in the items format; ``extra`` adds columns (``se_a``, ``n_responses``…)."""
    extra = dict(extra or {})
    kmax = bank.max_categories
    has_poly = not bank.all_dichotomous
    header = list(ITEM_COLUMNS) + ([f"b{k}" for k in range(1, kmax)] if has_poly else [])
    header += list(extra)
    for col, values in extra.items():
        if len(values) != len(bank):
            raise ValueError(f"extra column {col!r} has {len(values)} values for {len(bank)} items")
    with _open(target, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, it in enumerate(bank.params()):
            if it.is_dichotomous:
                row = [it.item_id, it.skill, it.model, _fmt(it.a), _fmt(it.b), _fmt(it.c),
                       _fmt(it.d)] + ([""] * (kmax - 1) if has_poly else [])
            else:
                th = [_fmt(v) for v in it.thresholds]
                row = [it.item_id, it.skill, it.model, _fmt(it.a), "", "", ""] + th \
                    + [""] * (kmax - 1 - len(th))
            row += [v if isinstance(v, str) else _fmt(float(v)) if isinstance(v, float)
                    else str(v) for v in (extra[col][i] for col in extra)]
            w.writerow(row)


@dataclass(frozen=True, eq=False)
class ResponseLog:
    """Long-format responses with the original ids; ``data`` indexes into the id tuples."""

    person_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    data: SparseResponses
    extra: dict[str, NDArray[np.object_]] = field(default_factory=dict)
    lines: NDArray[np.int64] | None = None

    def line_of(self, row: int) -> int:
        """File line of response row ``row`` (header = line 1)."""
        return int(self.lines[row]) if self.lines is not None else row + 2

    def check_against(self, bank: Bank, source: str = "responses") -> None:
        """Raise `FormatError` naming the line for unknown items or out-of-range categories."""
        index = {iid: k for k, iid in enumerate(bank.item_ids)}
        missing = [iid for iid in self.item_ids if iid not in index]
        if missing:
            row = int(np.flatnonzero(self.data.item == self.item_ids.index(missing[0]))[0])
            raise FormatError(f"{source} line {self.line_of(row)}: unknown item {missing[0]!r} "
                              f"(not in the item parameters)")
        cats = bank.n_categories[[index[iid] for iid in self.item_ids]][self.data.item]
        bad = self.data.response >= cats
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            iid = self.item_ids[self.data.item[row]]
            raise FormatError(f"{source} line {self.line_of(row)}: field 'response' = "
                              f"{self.data.response[row]} out of range for item {iid!r} "
                              f"({bank.models[index[iid]]}, categories 0..{cats[row] - 1})")

    def for_bank(self, bank: Bank) -> SparseResponses:
        """The responses re-indexed to ``bank``'s item order (checked with `check_against`)."""
        self.check_against(bank)
        index = {iid: k for k, iid in enumerate(bank.item_ids)}
        remap = np.array([index[iid] for iid in self.item_ids], dtype=np.int64)
        return SparseResponses(self.data.person, remap[self.data.item], self.data.response,
                               self.data.n_persons, len(bank))


def read_responses_csv(source: str | Path | io.TextIOBase,
                       keep: Iterable[str] = ()) -> ResponseLog:
    """Read long-format responses; ``keep`` names extra columns to return (e.g. ``group``).

    A file on disk is parsed by Apache Arrow's multithreaded columnar CSV reader straight into
    the typed arrays; if that fast path meets anything it does not accept as-is (a malformed
    row, a blank line, a non-integer or negative response, an empty id, padded cells), the file
    is read again row by row, which names the offending line. A good file is parsed once.
    """
    keep = tuple(keep)
    if isinstance(source, str | Path):
        fast = _read_responses_arrow(Path(source), keep)
        if fast is not None:
            return fast
    return _read_responses_rows(source, keep)


def _read_responses_arrow(path: Path, keep: tuple[str, ...]) -> ResponseLog | None:
    """The fast path of `read_responses_csv`, or None when the row reader must decide.

    The id columns are dictionary-encoded by the parser itself (each block of the file in
    parallel), so the checks on ids (empty, padded) look at the distinct ids only and the codes
    arrive as integers. The unified dictionary lists the ids in order of first appearance, the
    order the row reader numbers them in."""
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a dependency; the row reader still works
        return None
    columns = (*RESPONSE_COLUMNS, *keep)
    codes = pa.dictionary(pa.int32(), pa.string())
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"person_id": codes, "item_id": codes,
                              "response": pa.int64(), **{c: pa.string() for c in keep}},
                include_columns=list(columns), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
        table = table.unify_dictionaries()
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError, ValueError, OSError):
        return None
    if table.num_rows == 0 or table.column("response").null_count:
        return None
    ids: list[tuple[str, ...]] = []
    indices: list[NDArray[np.int64]] = []
    for col in ("person_id", "item_id"):
        chunked = table.column(col)
        if chunked.null_count:
            return None
        names = tuple(chunked.chunk(0).dictionary.to_pylist())
        if any(not name or name.strip() != name for name in names):
            return None
        index = np.empty(table.num_rows, dtype=np.int64)
        lo = 0
        for chunk in chunked.chunks:  # int32 codes widened into one array, one copy
            index[lo: lo + len(chunk)] = chunk.indices.to_numpy(zero_copy_only=False)
            lo += len(chunk)
        ids.append(names)
        indices.append(index)
    response = table.column("response").to_numpy()
    if response.min() < 0:
        return None
    persons, items = ids
    person, item = indices
    _refuse_duplicates(str(path), person, item, persons, items, None)
    data = SparseResponses(person, item, response.astype(np.int64, copy=False), len(persons),
                           len(items))
    extra = {c: np.asarray(table.column(c).to_pylist(), dtype=object) for c in keep}
    return ResponseLog(persons, items, data, extra, None)


#: Up to this many person × item cells the duplicate check marks cells instead of sorting.
_COUNTING_CELLS = 1 << 25


def _refuse_duplicates(name: str, person: NDArray[np.int64], item: NDArray[np.int64],
                       persons: Sequence[str], items: Sequence[str],
                       lines: NDArray[np.int64] | None) -> None:
    """`FormatError` naming the lines of the first repeated (person, item) pair."""
    key = person * max(len(items), 1)
    key += item
    cells = len(persons) * max(len(items), 1)
    if cells <= _COUNTING_CELLS:  # no repeat iff as many distinct cells as rows
        seen = np.zeros(cells, dtype=np.bool_)
        seen[key] = True
        if np.count_nonzero(seen) == key.size:
            return
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(np.diff(key[order]) == 0)
    if dup.size:
        first, second = int(order[dup[0]]), int(order[dup[0] + 1])
        line = (lambda r: int(lines[r])) if lines is not None else (lambda r: r + 2)
        raise FormatError(f"{name} line {line(second)}: person {persons[person[second]]!r} "
                          f"answered item {items[item[second]]!r} twice (also on line "
                          f"{line(first)})")


def _read_responses_rows(source: str | Path | io.TextIOBase, keep: tuple[str, ...]
                         ) -> ResponseLog:
    """Row-by-row reader: accepts padded cells and blank lines, names the line of an error."""
    name = _name(source)
    with _open(source) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise FormatError(f"{name}: empty file; expected header "
                              f"{','.join(RESPONSE_COLUMNS)}")
        header = [h.strip() for h in header]
        for col in (*RESPONSE_COLUMNS, *keep):
            if col not in header:
                raise FormatError(f"{name} line 1: missing column {col!r} in header {header}")
        ip, ii, ir = (header.index(c) for c in RESPONSE_COLUMNS)
        ik = [header.index(c) for c in keep]
        persons: dict[str, int] = {}
        items: dict[str, int] = {}
        p_idx: list[int] = []
        i_idx: list[int] = []
        resp: list[int] = []
        lines: list[int] = []
        kept: list[list[str]] = [[] for _ in keep]
        width = len(header)
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                raise FormatError(f"{name} line {lineno}: {len(row)} fields, header has {width}")
            pid, iid, text = row[ip].strip(), row[ii].strip(), row[ir].strip()
            if not pid:
                raise FormatError(f"{name} line {lineno}: field 'person_id' is empty")
            if not iid:
                raise FormatError(f"{name} line {lineno}: field 'item_id' is empty")
            try:
                value = int(text)
            except ValueError:
                raise FormatError(f"{name} line {lineno}: field 'response' is not an integer "
                                  f"category: {text!r}") from None
            if value < 0:
                raise FormatError(f"{name} line {lineno}: field 'response' must be >= 0, "
                                  f"got {value}")
            p_idx.append(persons.setdefault(pid, len(persons)))
            i_idx.append(items.setdefault(iid, len(items)))
            resp.append(value)
            lines.append(lineno)
            for store, k in zip(kept, ik, strict=True):
                store.append(row[k])
    person = np.asarray(p_idx, dtype=np.int64)
    item = np.asarray(i_idx, dtype=np.int64)
    line_arr = np.asarray(lines, dtype=np.int64)
    _refuse_duplicates(name, person, item, list(persons), list(items), line_arr)
    data = SparseResponses(person, item, np.asarray(resp, dtype=np.int64), len(persons),
                           len(items))
    extra = {c: np.asarray(v, dtype=object) for c, v in zip(keep, kept, strict=True)}
    return ResponseLog(tuple(persons), tuple(items), data, extra, line_arr)


def _csv_field(text: str) -> str:
    """One field as Python's csv writer writes it with QUOTE_MINIMAL."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_responses_csv(target: str | Path | io.TextIOBase, person_ids: Sequence[str],
                        item_ids: Sequence[str], data: SparseResponses) -> None:
    """Write responses in the long format, one row per observed response.

    The rows are assembled column-wise by Arrow (each id quoted once, as Python's csv module
    would, then gathered per row), byte-for-byte what the csv module writes."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover
        pa = None
    if pa is None or data.n_responses == 0:
        with _open(target, "w") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(RESPONSE_COLUMNS)
            for p, i, r in zip(data.person, data.item, data.response, strict=True):
                w.writerow((person_ids[p], item_ids[i], int(r)))
        return
    persons = pa.array([_csv_field(str(x)) for x in person_ids], pa.large_string())
    items = pa.array([_csv_field(str(x)) for x in item_ids], pa.large_string())
    comma, newline = pa.scalar(",", pa.large_string()), pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(
        persons.take(pa.array(data.person)), comma, items.take(pa.array(data.item)), comma,
        pa.array(np.asarray(data.response, dtype=np.int64)).cast(pa.large_string()), newline,
        pa.scalar("", pa.large_string()))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[: len(lines) + 1]
    body = memoryview(lines.buffers()[2])[offsets[0]: offsets[-1]]
    with _open(target, "w") as f:
        f.write(",".join(RESPONSE_COLUMNS) + "\n")
        if isinstance(f, io.TextIOWrapper):
            f.flush()
            f.buffer.write(body)
        else:
            f.write(bytes(body).decode("utf-8"))
