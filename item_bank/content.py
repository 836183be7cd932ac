"""Item content and parameter values, and the bank file formats (JSON and the content CSV).

Values (frozen dataclasses, no database): `SkillInfo`, `Option`, `ItemContent`,
`ParameterRecord` and `BankDocument`, the in-memory form of everything an import writes.

**JSON** (``"format": "proficio-bank/1"``) comes in two shapes that the reader accepts alike:

* a per-skill content file: ``{"format", "skill": "<skill_id>", "items": [...]}``;
* a bank bundle (what `write_bank_json` produces): ``{"format", "bank", "skills": [{"id",
  "name", "description"}], "items": [...]}`` where every item names its ``"skill"``.

An item is ``{"id", "stem" (Markdown), "options": [{"id", "text"}, ...], "key", "explanation",
"difficulty" (1 junior … 5 senior), "tags": [...], "enemies": [ids], "status", "model",
"author", "parameters": {"model", "a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d",
"n_responses", "provisional"}}``; only ``id``, ``stem``, ``options`` and ``key`` are required.

**Content CSV** (header required, one item per row):
``id,skill,stem,option_a,option_b,option_c,option_d,option_e,key,explanation,difficulty,tags,
enemies,status,model`` — options are the non-empty ``option_<id>`` columns (ids ``a`` … ``j``),
``tags`` and ``enemies`` are ``;``-separated. A cell a spreadsheet would evaluate as a formula
(starting with ``=``, ``+``, ``-``, ``@``, tab or CR, after any quotes) is written with one more
leading ``'`` and read back without it, so exported files are safe to open and round-trip
exactly. Parameters travel in the DESIGN.md items CSV (`irt.io`), not in this file.

Every reader validates the whole input and raises `irt.io.FormatError` naming the file, the row
(JSON: ``items[k]`` and the item id; CSV: the line, header = line 1) and the field.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from irt import DICHOTOMOUS_MODELS, POLYTOMOUS_MODELS, ItemParams
from irt.io import FormatError, ItemTable, read_items_csv
from item_bank.scoring import (
    ENTRY_TYPES,
    MAX_ANSWER_CHARS,
    RESPONSE_TYPES,
    SCORINGS,
    is_polytomous,
    read_number,
    score_response,
)

FORMAT = "proficio-bank/1"
ITEM_STATUSES = ("pretest", "operational", "held", "retired")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
SKILL_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MIN_OPTIONS, MAX_OPTIONS = 2, 10
#: Longest stem / explanation and option text, in characters. The shipped bank's longest are
#: 353, 334 and 107; the limits leave room for code listings while keeping one item small
#: (a 4.9 MB stem was once imported and served to every candidate).
MAX_STEM_CHARS = 10_000
MAX_EXPLANATION_CHARS = 10_000
MAX_OPTION_CHARS = 1_000
#: Characters XML 1.0 cannot carry (and no item text needs).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
CSV_OPTION_IDS = tuple("abcdefghij")
CONTENT_CSV_COLUMNS = ("id", "skill", "stem", *(f"option_{o}" for o in "abcde"), "key",
                       "explanation", "difficulty", "tags", "enemies", "status", "model")
_ITEM_FIELDS = {"id", "stem", "options", "key", "explanation", "difficulty", "tags", "enemies",
                "status", "model", "author", "parameters", "skill", "response_type", "correct",
                "scoring", "media"}
_PARAM_FIELDS = {"model", "a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d", "n_responses",
                 "provisional", "thresholds"}
#: Most accepted answers of a numeric or text entry item.
MAX_ACCEPTED = 20
#: Longest base64 text of one image in a JSON bank file (1 MB of image, as `item_bank.media`).
MAX_MEDIA_BASE64 = 1_400_000

__all__ = [
    "FORMAT",
    "BankDocument",
    "FormatError",
    "ItemContent",
    "ItemWarning",
    "MediaFile",
    "MediaRef",
    "Option",
    "ParameterRecord",
    "SkillInfo",
    "content_warnings",
    "item_warnings",
    "parameter_columns",
    "read_bank_json",
    "read_content_csv",
    "read_manifest_dir",
    "records_from_table",
    "write_bank_json",
    "write_content_csv",
]


@dataclass(frozen=True)
class SkillInfo:
    slug: str
    name: str
    description: str = ""


@dataclass(frozen=True)
class Option:
    id: str
    text: str


@dataclass(frozen=True)
class MediaRef:
    """An image an item shows: its file name within the item's media, and its alt text."""

    name: str
    alt: str


@dataclass(frozen=True)
class MediaFile:
    """The bytes of an item's image in transit (import/export); checked by
    `item_bank.media.content_type` before they are stored."""

    item_id: str
    name: str
    data: bytes


@dataclass(frozen=True)
class ItemContent:
    """One item as authored. ``response_type`` (`item_bank.scoring`) says how it is answered
    and scored: ``single`` uses ``key``; ``multiple``, ``ordering``, ``numeric`` and ``text`` use
    ``correct`` (the correct options, the right order, the accepted values or texts); ``scoring``
    (``partial`` or ``all_or_nothing``) applies to ``multiple``. ``media`` lists the images the
    stem shows (``![alt](media:NAME)``)."""

    external_id: str
    skill: str
    stem: str
    options: tuple[Option, ...]
    key: str
    explanation: str = ""
    difficulty: int | None = None
    tags: tuple[str, ...] = ()
    enemies: tuple[str, ...] = ()
    status: str = "pretest"
    model: str = "2pl"
    author: str | None = None
    response_type: str = "single"
    correct: tuple[str, ...] = ()
    scoring: str = "partial"
    media: tuple[MediaRef, ...] = ()

    @property
    def option_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.options)

    @property
    def polytomous(self) -> bool:
        return is_polytomous(self.response_type, self.scoring, len(self.correct))

    def score(self, answer: str) -> int:
        """The category of ``answer`` (`item_bank.scoring.score_response`; an answer that does
        not fit the item raises `ValueError`)."""
        try:
            return score_response(self, answer)
        except ValueError as exc:
            raise ValueError(f"item {self.external_id!r}: {exc}") from None


@dataclass(frozen=True)
class ParameterRecord:
    """One item's parameters with their standard errors (None when unknown)."""

    params: ItemParams
    se_a: float | None = None
    se_b: float | None = None
    se_c: float | None = None
    se_d: float | None = None
    n_responses: int | None = None
    provisional: bool = False


@dataclass(frozen=True)
class BankDocument:
    """Everything one import file holds: skills it defines, items, and parameters (if any)."""

    source: str
    skills: tuple[SkillInfo, ...] = ()
    items: tuple[ItemContent, ...] = ()
    parameters: tuple[ParameterRecord, ...] = ()
    name: str = ""
    #: Images of the items (`ItemContent.media` names them).
    files: tuple[MediaFile, ...] = ()
    #: Items of the source that were not imported, one line each (file, identifier, reason).
    skipped: tuple[str, ...] = ()
    #: Skills the items name without the source defining them (a QTI package's default skill
    #: or LOM keyword): the import creates the missing ones. (A JSON file defines skills in its
    #: ``skills`` list; a skill it only names must exist, so a typo is not a new skill.)
    implied_skills: tuple[str, ...] = ()

    def merged(self, other: BankDocument) -> BankDocument:
        return BankDocument(f"{self.source}, {other.source}", self.skills + other.skills,
                            self.items + other.items, self.parameters + other.parameters,
                            self.name or other.name, self.files + other.files,
                            self.skipped + other.skipped,
                            tuple(sorted(set(self.implied_skills) | set(other.implied_skills))))


# -- validation --------------------------------------------------------------------------------


class _Where:
    """Builds error messages that name the file, the row and the field."""

    def __init__(self, source: str, row: str) -> None:
        self.source, self.row = source, row

    def error(self, fld: str, message: str) -> FormatError:
        return FormatError(f"{self.source}: {self.row}: field {fld!r}: {message}")


def _text(where: _Where, fld: str, value: Any, required: bool = True,
          max_chars: int = MAX_STEM_CHARS) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise where.error(fld, f"expected text, got {type(value).__name__}")
    if required and not value.strip():
        raise where.error(fld, "must not be empty")
    if len(value) > max_chars:
        raise where.error(fld, f"is {len(value)} characters long; at most {max_chars} allowed")
    bad = _CONTROL.search(value)
    if bad:
        raise where.error(fld, f"contains the control character {bad.group()!r}")
    # one line-ending convention, so that every format (XML normalizes CR LF) round-trips
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _str_list(where: _Where, fld: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise where.error(fld, "expected a list of non-empty strings")
    if any(";" in v or _CONTROL.search(v) or "\n" in v for v in value):
        raise where.error(fld, "values must not contain ';', line breaks or control characters")
    if len(set(value)) != len(value):
        raise where.error(fld, f"repeated values in {value}")
    return tuple(v.strip() for v in value)


def validate_item(where: _Where, raw: Mapping[str, Any], skill: str | None,
                  default_status: str = "pretest"
                  ) -> tuple[ItemContent, ParameterRecord | None]:
    """Validate one raw item mapping (JSON object or CSV row) into an `ItemContent`."""
    unknown = sorted(set(raw) - _ITEM_FIELDS)
    if unknown:
        raise where.error(unknown[0], f"is not a known item field (known: {sorted(_ITEM_FIELDS)})")
    iid = raw.get("id")
    if not isinstance(iid, str) or not EXTERNAL_ID.match(iid):
        raise where.error("id", f"must be 1-64 letters, digits, '_', '-', '.', got {iid!r}")
    where = _Where(where.source, f"{where.row} (id {iid!r})")
    item_skill = raw.get("skill", skill)
    if skill is not None and raw.get("skill") not in (None, skill):
        raise where.error("skill", f"{raw.get('skill')!r} differs from the file's skill {skill!r}")
    if not isinstance(item_skill, str) or not SKILL_ID.match(item_skill):
        raise where.error("skill", f"must be a skill id like 'server_side', got {item_skill!r}")
    stem = _text(where, "stem", raw.get("stem"))
    rtype = raw.get("response_type") or "single"
    if rtype not in RESPONSE_TYPES:
        raise where.error("response_type", f"must be one of {RESPONSE_TYPES}, got {rtype!r}")
    options_raw = raw.get("options")
    if rtype in ENTRY_TYPES:
        if options_raw not in (None, []):
            raise where.error("options", f"a {rtype} entry item has no options")
        options_raw = []
    elif not isinstance(options_raw, list) or not MIN_OPTIONS <= len(options_raw) <= MAX_OPTIONS:
        raise where.error("options", f"expected a list of {MIN_OPTIONS}-{MAX_OPTIONS} options")
    options = []
    for k, opt in enumerate(options_raw):
        if not isinstance(opt, Mapping) or set(opt) != {"id", "text"}:
            raise where.error(f"options[{k}]", 'expected {"id": ..., "text": ...}')
        oid = opt["id"]
        if not isinstance(oid, str) or not EXTERNAL_ID.match(oid) or len(oid) > 16:
            raise where.error(f"options[{k}].id", f"must be a short identifier, got {oid!r}")
        options.append(Option(oid, _text(where, f"options[{k}].text", opt["text"],
                                          max_chars=MAX_OPTION_CHARS)))
    ids = [o.id for o in options]
    if len(set(ids)) != len(ids):
        raise where.error("options", f"repeated option ids {ids}")
    texts = [o.text.strip().casefold() for o in options]
    if len(set(texts)) != len(texts):
        raise where.error("options", "two options have the same text")
    key, correct, scoring = _answer_key(where, raw, rtype, ids)
    explanation = _text(where, "explanation", raw.get("explanation"), required=False,
                        max_chars=MAX_EXPLANATION_CHARS)
    difficulty = raw.get("difficulty")
    if difficulty is not None and (isinstance(difficulty, bool) or not isinstance(difficulty, int)
                                   or not 1 <= difficulty <= 5):
        raise where.error("difficulty", f"must be an integer 1 (junior) to 5 (senior), "
                                        f"got {difficulty!r}")
    tags = _str_list(where, "tags", raw.get("tags"))
    enemies = _str_list(where, "enemies", raw.get("enemies"))
    if iid in enemies:
        raise where.error("enemies", "an item cannot be its own enemy")
    status = raw.get("status") or default_status
    if status not in ITEM_STATUSES:
        raise where.error("status", f"must be one of {ITEM_STATUSES}, got {status!r}")
    polytomous = is_polytomous(rtype, scoring, len(correct))
    model = str(raw.get("model") or ("gpcm" if polytomous else "2pl")).lower()
    if polytomous and model not in POLYTOMOUS_MODELS:
        raise where.error("model", f"a partial-credit multiple-response item is scored in "
                                   f"{len(correct) + 1} categories; model must be one of "
                                   f"{POLYTOMOUS_MODELS}, got {model!r}")
    if not polytomous and model not in DICHOTOMOUS_MODELS:
        raise where.error("model", f"a {rtype} item scored 0/1 needs a dichotomous model, one "
                                   f"of {DICHOTOMOUS_MODELS}, got {model!r}")
    author = raw.get("author")
    if author is not None and not isinstance(author, str):
        raise where.error("author", "expected text")
    media = _media_refs(where, raw.get("media"))
    item = ItemContent(iid, item_skill, stem, tuple(options), key, explanation, difficulty, tags,
                       enemies, status, model, author, rtype, correct, scoring, media)
    params = raw.get("parameters")
    record = None if params is None else _parameter_record(where, params, item)
    return item, record


def _answer_key(where: _Where, raw: Mapping[str, Any], rtype: str, ids: list[str]
                ) -> tuple[str, tuple[str, ...], str]:
    """``(key, correct, scoring)`` of a raw item of response type ``rtype``."""
    scoring = raw.get("scoring") or "partial"
    if scoring not in SCORINGS:
        raise where.error("scoring", f"must be one of {SCORINGS}, got {scoring!r}")
    if rtype == "single":
        key = raw.get("key")
        if not isinstance(key, str) or key not in ids:
            raise where.error("key", f"{key!r} is not one of the option ids {', '.join(ids)}")
        if raw.get("correct") not in (None, [], [key]):
            raise where.error("correct", "a single-choice item names its answer in 'key'")
        return key, (), scoring
    if raw.get("key") not in (None, ""):
        raise where.error("key", f"a {rtype} item lists its answers in 'correct', not 'key'")
    value = raw.get("correct")
    if rtype == "numeric" and isinstance(value, list):
        value = [repr(v) if isinstance(v, float) else str(v)
                 if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise where.error("correct", "expected a non-empty list of strings")
    correct = tuple(v.strip() for v in value)
    if len(set(correct)) != len(correct):
        raise where.error("correct", f"repeated values in {list(correct)}")
    if rtype == "multiple":
        bad = [c for c in correct if c not in ids]
        if bad:
            raise where.error("correct", f"{bad[0]!r} is not one of the option ids "
                                         f"{', '.join(ids)}")
        correct = tuple(i for i in ids if i in correct)  # option order
    elif rtype == "ordering":
        if sorted(correct) != sorted(ids):
            raise where.error("correct", f"must list every option id once in the right order, "
                                         f"got {list(correct)} for options {ids}")
    else:
        if len(correct) > MAX_ACCEPTED:
            raise where.error("correct", f"at most {MAX_ACCEPTED} accepted answers")
        for k, c in enumerate(correct):
            if not c or len(c) > MAX_ANSWER_CHARS or _CONTROL.search(c):
                raise where.error(f"correct[{k}]", f"must be 1-{MAX_ANSWER_CHARS} characters "
                                                   f"of text")
            if rtype == "numeric" and read_number(c) is None:
                raise where.error(f"correct[{k}]", f"{c!r} is not a number")
    return "", correct, scoring


MEDIA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def _media_refs(where: _Where, raw: Any) -> tuple[MediaRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.error("media", 'expected a list of {"name": ..., "alt": ...}')
    out = []
    for k, m in enumerate(raw):
        if not isinstance(m, Mapping) or not {"name", "alt"} <= set(m) <= {"name", "alt", "data"}:
            raise where.error(f"media[{k}]", 'expected {"name": ..., "alt": ...} (and "data": '
                                             'the file in base64)')
        name = m["name"]
        if not isinstance(name, str) or not MEDIA_NAME.match(name):
            raise where.error(f"media[{k}].name", f"must be a plain file name, got {name!r}")
        alt = m["alt"]
        if not isinstance(alt, str) or not alt.strip():
            raise where.error(f"media[{k}].alt", "an image needs alt text (what it shows, for "
                                                 "screen readers)")
        out.append(MediaRef(name, _text(where, f"media[{k}].alt", alt,
                                        max_chars=MAX_OPTION_CHARS)))
    if len({m.name for m in out}) != len(out):
        raise where.error("media", "a file is listed twice")
    return tuple(out)


def _media_data(where: _Where, item_id: str, raw: Any) -> tuple[MediaFile, ...]:
    """The base64 ``data`` of an item's JSON ``media`` entries (already checked by
    `_media_refs`)."""
    out = []
    for k, m in enumerate(raw or []):
        if "data" not in m:
            continue
        if not isinstance(m["data"], str) or len(m["data"]) > MAX_MEDIA_BASE64:
            raise where.error(f"media[{k}].data", "expected the file as base64 text (at most "
                                                  f"{MAX_MEDIA_BASE64} characters)")
        try:
            data = base64.b64decode(m["data"], validate=True)
        except (binascii.Error, ValueError):
            raise where.error(f"media[{k}].data", "is not valid base64") from None
        out.append(MediaFile(item_id, m["name"], data))
    return tuple(out)


def _optional_float(where: _Where, fld: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(fld, f"expected a finite number, got {value!r}")
    return float(value)


def _parameter_record(where: _Where, raw: Any, item: ItemContent) -> ParameterRecord:
    if not isinstance(raw, Mapping):
        raise where.error("parameters", "expected an object")
    unknown = sorted(set(raw) - _PARAM_FIELDS)
    if unknown:
        raise where.error(f"parameters.{unknown[0]}", "is not a known parameter field")
    model = str(raw.get("model") or item.model).lower()
    values = {k: _optional_float(where, f"parameters.{k}", raw.get(k))
              for k in ("a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d")}
    th_raw = raw.get("thresholds") or []
    if not isinstance(th_raw, list):
        raise where.error("parameters.thresholds", "expected a list of numbers")
    thresholds = tuple(_optional_float(where, f"parameters.thresholds[{k}]", v) or 0.0
                       for k, v in enumerate(th_raw))
    polytomous = model in POLYTOMOUS_MODELS
    if values["a"] is None or (values["b"] is None and not polytomous):
        raise where.error("parameters", "needs at least 'a' and 'b'")
    try:
        if polytomous:
            params = ItemParams(item.external_id, model, values["a"], thresholds=thresholds,
                                skill=item.skill)
        else:
            params = ItemParams(item.external_id, model, values["a"], values["b"] or 0.0,
                                0.0 if values["c"] is None else values["c"],
                                1.0 if values["d"] is None else values["d"], skill=item.skill)
    except ValueError as exc:
        raise where.error("parameters", str(exc)) from None
    if not params.a > 0:  # calibration may show a negative slope; the bank keeps a > 0
        raise where.error("parameters.a", f"must be > 0 in the bank, got {params.a:g} (a "
                                          f"negative slope: the item runs against the scale)")
    expected = len(item.correct) + 1 if item.polytomous else 2
    if params.n_categories != expected:
        raise where.error("parameters.model", f"the item is scored in {expected} categories; "
                                              f"the parameters ({params.model}) have "
                                              f"{params.n_categories}")
    n = raw.get("n_responses")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise where.error("parameters.n_responses", f"expected a count >= 0, got {n!r}")
    prov = raw.get("provisional", False)
    if not isinstance(prov, bool):
        raise where.error("parameters.provisional", "expected true or false")
    return ParameterRecord(params, values["se_a"], values["se_b"], values["se_c"],
                           values["se_d"], n, prov)


def check_unique_ids(source: str, items: Sequence[ItemContent], rows: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for item, row in zip(items, rows, strict=True):
        if item.external_id in seen:
            raise FormatError(f"{source}: {row} (id {item.external_id!r}): field 'id': duplicate "
                              f"external id (also {seen[item.external_id]})")
        seen[item.external_id] = row


# -- writing-quality warnings ------------------------------------------------------------------
#
# Checks of docs/item-writing-guide.md that a machine can make. They are warnings, not errors: an
# import goes ahead, and the author reviews each flagged item (some flags are legitimate, e.g. two
# options that differ only in the order of two column names when the order is what is tested).

#: Words too common to count as a cue when key and stem share them.
_STOPWORD_TEXT = (
    "a an and are as at be but by can do does for from has have how if in into is it its not of "
    "on one or so than that the their them then there these they this to was what when where "
    "which who why will with without you your all any each every only more most some such "
    "other another")
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
#: The key is flagged as the longest option when it is unique and at least this much longer
#: (relative) than the next longest: a character or two is no visible cue.
LONGEST_KEY_MARGIN = 0.10
#: Two options with at least this `difflib` similarity (0–1) are near copies.
NEAR_COPY_RATIO = 0.85
#: Options with fewer words than this are not compared for near copies ("1, 1, 3" vs "1, 2, 3").
NEAR_COPY_MIN_WORDS = 4


@dataclass(frozen=True)
class ItemWarning:
    """One writing-quality warning: ``code`` is ``key-longest``, ``near-copy`` or
    ``key-in-stem``; ``message`` says what to look at."""

    item_id: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"item {self.item_id!r}: {self.code}: {self.message}"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9_'-]*", text.casefold())


def _content_words(text: str) -> set[str]:
    return {w for w in _words(text) if len(w) >= 4 and w not in _STOPWORDS}


def _only_numbers_differ(w1: list[str], w2: list[str]) -> bool:
    """Parallel options that differ only in numbers ("about 13% of runs" / "about 37% …")."""
    return len(w1) == len(w2) and all(a == b or (a[0].isdigit() and b[0].isdigit())
                                      for a, b in zip(w1, w2, strict=True))


def item_warnings(item: ItemContent) -> list[ItemWarning]:
    """Cueing patterns of ``item`` (see docs/item-writing-guide.md):

    * ``key-longest``: the key is the unique longest option, by at least `LONGEST_KEY_MARGIN`
      (test-wise candidates pick the longest, most qualified option);
    * ``near-copy``: two options of at least `NEAR_COPY_MIN_WORDS` words are near copies
      (`difflib` ratio ≥ `NEAR_COPY_RATIO`) or the same words in another order, and the pair
      stands out: neither is that close to a third option (a mirrored pair among unlike options
      tells the test-wise candidate that the key is one of the two). Options that differ only
      in numbers are parallel, not copies;
    * ``key-in-stem``: the key repeats the stem, i.e. it shares at least two content words with
      the stem and at least two more than any distractor does (a "clang" association).
    """
    out: list[ItemWarning] = []
    if item.response_type != "single":  # the cues below are about one key among distractors
        return out
    key = next(o for o in item.options if o.id == item.key)
    others = [o for o in item.options if o.id != item.key]
    longest_other = max((len(o.text.strip()) for o in others), default=0)
    if len(key.text.strip()) > longest_other * (1.0 + LONGEST_KEY_MARGIN):
        out.append(ItemWarning(item.external_id, "key-longest",
                               f"the key ({key.id}) is clearly the longest option; lengthen a "
                               f"distractor or shorten the key"))
    pairs = []
    for k, first in enumerate(item.options):
        w1 = _words(first.text)
        for second in item.options[k + 1:]:
            w2 = _words(second.text)
            if min(len(w1), len(w2)) < NEAR_COPY_MIN_WORDS or _only_numbers_differ(w1, w2):
                continue
            ratio = SequenceMatcher(None, " ".join(w1), " ".join(w2)).ratio()
            if ratio >= NEAR_COPY_RATIO or sorted(w1) == sorted(w2):
                pairs.append((first.id, second.id, ratio))
    degree = Counter(o for p in pairs for o in p[:2])
    for first_id, second_id, ratio in pairs:
        if degree[first_id] == 1 and degree[second_id] == 1:  # a pair that stands out
            which = "and one of them is the key" if item.key in (first_id, second_id) else \
                "(both distractors)"
            out.append(ItemWarning(item.external_id, "near-copy",
                                   f"options {first_id} and {second_id} are near copies or "
                                   f"mirror each other (similarity {ratio:.2f}) {which}"))
    stem_words = _content_words(item.stem)
    shared = len(_content_words(key.text) & stem_words)
    most_other = max((len(_content_words(o.text) & stem_words) for o in others), default=0)
    if shared >= 2 and shared >= most_other + 2:
        out.append(ItemWarning(item.external_id, "key-in-stem",
                               f"the key ({key.id}) repeats {shared} words of the stem, the "
                               f"distractors at most {most_other}"))
    return out


def content_warnings(items: Iterable[ItemContent]) -> list[ItemWarning]:
    """`item_warnings` of every item, in order."""
    return [w for it in items for w in item_warnings(it)]


# -- JSON --------------------------------------------------------------------------------------


def _load_json(source: str | Path | io.TextIOBase) -> tuple[str, Any]:
    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<input>")
    try:
        if isinstance(source, str | Path):
            text = Path(source).read_text(encoding="utf-8-sig")
        else:
            text = source.read()
        return name, json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{name} line {exc.lineno} column {exc.colno}: invalid JSON: "
                          f"{exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name}: not UTF-8 text ({exc.reason})") from None


def _skill_info(where: _Where, raw: Any) -> SkillInfo:
    if not isinstance(raw, Mapping):
        raise where.error("skills", "expected an object with 'id' and 'name'")
    sid = raw.get("id")
    if not isinstance(sid, str) or not SKILL_ID.match(sid):
        raise where.error("id", f"must be a skill id like 'server_side', got {sid!r}")
    return SkillInfo(sid, _text(where, "name", raw.get("name")),
                     _text(where, "description", raw.get("description"), required=False))


def parse_bank_json(name: str, doc: Any, default_status: str = "pretest") -> BankDocument:
    """Validate a parsed JSON document (either shape) into a `BankDocument`."""
    if not isinstance(doc, Mapping):
        raise FormatError(f"{name}: expected a JSON object at the top level")
    if doc.get("format") != FORMAT:
        raise FormatError(f"{name}: field 'format': expected {FORMAT!r}, got "
                          f"{doc.get('format')!r}")
    skills: list[SkillInfo] = []
    for k, raw in enumerate(doc.get("skills") or []):
        skills.append(_skill_info(_Where(name, f"skills[{k}]"), raw))
    skill = doc.get("skill")
    if skill is not None and (not isinstance(skill, str) or not SKILL_ID.match(skill)):
        raise FormatError(f"{name}: field 'skill': must be a skill id, got {skill!r}")
    items_raw = doc.get("items", [])
    if not isinstance(items_raw, list):
        raise FormatError(f"{name}: field 'items': expected a list")
    items, params, rows = [], [], []
    files: list[MediaFile] = []
    for k, raw in enumerate(items_raw):
        row = f"items[{k}]"
        if not isinstance(raw, Mapping):
            raise FormatError(f"{name}: {row}: expected an object")
        item, record = validate_item(_Where(name, row), raw, skill, default_status)
        items.append(item)
        rows.append(row)
        files.extend(_media_data(_Where(name, f"{row} (id {item.external_id!r})"),
                                 item.external_id, raw.get("media")))
        if record is not None:
            params.append(record)
    check_unique_ids(name, items, rows)
    bank = doc.get("bank")
    bank_name = bank if isinstance(bank, str) else ""
    return BankDocument(name, tuple(skills), tuple(items), tuple(params), bank_name,
                        tuple(files))


def read_bank_json(source: str | Path | io.TextIOBase,
                   default_status: str = "pretest") -> BankDocument:
    """Read and validate a JSON bank file (per-skill content file or bundle); items that name
    no status get ``default_status``."""
    name, doc = _load_json(source)
    return parse_bank_json(name, doc, default_status)


def read_manifest_dir(folder: str | Path) -> BankDocument:
    """Read a bank folder: ``skills.json`` (the manifest) plus one ``<skill_id>.json`` per skill,
    and ``parameters.csv`` (the items CSV) when the folder has one.

    The manifest may set ``"item_status"``: the status of items that name none (default
    ``pretest``). A skill whose content file is missing is an error; items are validated file by
    file and external ids must be unique across files.
    """
    folder = Path(folder)
    manifest_path = folder / "skills.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder}: no skills.json manifest")
    raw_manifest = _load_json(manifest_path)[1]
    doc = parse_bank_json(str(manifest_path), raw_manifest)
    default_status = raw_manifest.get("item_status") or "pretest"
    if default_status not in ITEM_STATUSES:
        raise FormatError(f"{manifest_path}: field 'item_status': must be one of "
                          f"{ITEM_STATUSES}, got {default_status!r}")
    out = BankDocument(str(folder), doc.skills, (), (), doc.name)
    for skill in doc.skills:
        path = folder / f"{skill.slug}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{manifest_path}: skill {skill.slug!r} has no content file "
                                    f"{path.name}")
        part = read_bank_json(path, default_status)
        if any(it.skill != skill.slug for it in part.items):
            raise FormatError(f"{path}: field 'skill': items must belong to {skill.slug!r}")
        out = BankDocument(out.source, out.skills, out.items + part.items,
                           out.parameters + part.parameters, out.name, out.files + part.files)
    check_unique_ids(str(folder), out.items, [f"item {it.external_id}" for it in out.items])
    params_path = folder / "parameters.csv"
    if params_path.is_file():
        table = read_items_csv(params_path)
        out = BankDocument(out.source, out.skills, out.items,
                           out.parameters + records_from_table(table, str(params_path)), out.name,
                           out.files)
    return out


def _item_json(item: ItemContent, record: ParameterRecord | None,
               files: Mapping[tuple[str, str], bytes] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.external_id, "skill": item.skill, "stem": item.stem,
        "options": [{"id": o.id, "text": o.text} for o in item.options], "key": item.key,
        "explanation": item.explanation, "difficulty": item.difficulty, "tags": list(item.tags),
        "enemies": list(item.enemies), "status": item.status, "model": item.model,
    }
    if item.author is not None:
        out["author"] = item.author
    if item.response_type != "single":
        out.update(response_type=item.response_type, correct=list(item.correct), key="")
        if item.response_type == "multiple":
            out["scoring"] = item.scoring
    if item.media:
        out["media"] = []
        for m in item.media:
            entry = {"name": m.name, "alt": m.alt}
            data = (files or {}).get((item.external_id, m.name))
            if data is not None:
                entry["data"] = base64.b64encode(data).decode("ascii")
            out["media"].append(entry)
    if record is not None:
        p = record.params
        out["parameters"] = {
            "model": p.model, "a": p.a, "b": None if p.thresholds else p.b, "c": p.c, "d": p.d,
            "se_a": record.se_a, "se_b": record.se_b, "se_c": record.se_c, "se_d": record.se_d,
            "n_responses": record.n_responses, "provisional": record.provisional,
        }
        if p.thresholds:
            out["parameters"]["thresholds"] = list(p.thresholds)
    return out


def write_bank_json(target: str | Path | io.TextIOBase, doc: BankDocument) -> None:
    """Write a bundle (skills, items and their current parameters) as UTF-8 JSON."""
    by_id = {r.params.item_id: r for r in doc.parameters}
    payload = {
        "format": FORMAT, "bank": doc.name,
        "skills": [{"id": s.slug, "name": s.name, "description": s.description}
                   for s in doc.skills],
        "items": [_item_json(it, by_id.get(it.external_id),
                             {(f.item_id, f.name): f.data for f in doc.files})
                  for it in doc.items],
    }
    text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
    if isinstance(target, str | Path):
        Path(target).write_text(text, encoding="utf-8")
    else:
        target.write(text)


# -- content CSV -------------------------------------------------------------------------------


def _opened(target: str | Path | io.TextIOBase, mode: str) -> Any:
    """An open text file for a path (closed on exit), or the given stream left open."""
    if isinstance(target, str | Path):
        return open(target, mode, newline="", encoding="utf-8-sig" if mode == "r" else "utf-8")
    return nullcontext(target)


#: A cell a spreadsheet would run as a formula (OWASP "CSV Injection": =, +, -, @, tab, CR), also
#: behind any number of quotes so that the escaping below can be undone exactly.
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")


def csv_cell(text: str) -> str:
    """The content-CSV form of a cell: a leading ``'`` added before a formula trigger (a
    spreadsheet then shows the text instead of evaluating it). `csv_uncell` is its inverse."""
    return "'" + text if _FORMULA.match(text) else text


def csv_uncell(text: str) -> str:
    """The cell value `csv_cell` was given (one leading ``'`` dropped before a trigger)."""
    return text[1:] if text.startswith("'") and _FORMULA.match(text) else text


def _split(value: str) -> list[str] | None:
    parts = [v.strip() for v in value.split(";") if v.strip()]
    return parts or None


def read_content_csv(source: str | Path | io.TextIOBase) -> BankDocument:
    """Read the content CSV described in the module docstring (all rows validated)."""
    name = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<input>")
    with _opened(source, "r") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise FormatError(f"{name}: empty file; expected a header starting with 'id'")
        header = [h.strip() for h in header]
        allowed = set(CONTENT_CSV_COLUMNS) | {f"option_{o}" for o in CSV_OPTION_IDS} | {"author"}
        for h in header:
            if h not in allowed:
                raise FormatError(f"{name} line 1: unknown column {h!r}")
        for h in ("id", "skill", "stem", "key"):
            if h not in header:
                raise FormatError(f"{name} line 1: missing column {h!r}")
        if len(set(header)) != len(header):
            raise FormatError(f"{name} line 1: duplicate column names")
        items, rows = [], []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise FormatError(f"{name} line {lineno}: {len(row)} fields, header has "
                                  f"{len(header)}")
            rec = dict(zip(header, (csv_uncell(c) for c in row), strict=True))
            raw: dict[str, Any] = {
                "id": rec["id"].strip(), "skill": rec["skill"].strip(), "stem": rec["stem"],
                "key": rec["key"].strip(),
                "options": [{"id": h[len("option_"):], "text": rec[h]}
                            for h in header if h.startswith("option_") and rec[h].strip()],
            }
            for h in ("explanation", "status", "model", "author"):
                if rec.get(h, "").strip():
                    raw[h] = rec[h] if h == "explanation" else rec[h].strip()
            if rec.get("difficulty", "").strip():
                text = rec["difficulty"].strip()
                raw["difficulty"] = int(text) if text.isdigit() else text
            for h in ("tags", "enemies"):
                if rec.get(h, "").strip():
                    raw[h] = _split(rec[h])
            item, _ = validate_item(_Where(name, f"line {lineno}"), raw, None)
            items.append(item)
            rows.append(f"line {lineno}")
        check_unique_ids(name, items, rows)
        return BankDocument(name, (), tuple(items), ())


def write_content_csv(target: str | Path | io.TextIOBase, items: Iterable[ItemContent]) -> None:
    """Write items in the content CSV; option ids must be among ``a`` … ``j``."""
    items = list(items)
    other = [it.external_id for it in items if it.response_type != "single"]
    if other:
        raise ValueError(f"items {other[:5]} are not single-choice items; the content CSV holds "
                         f"only those (use the JSON or QTI format)")
    n_opt = max((len(it.options) for it in items), default=5)
    used = sorted({o.id for it in items for o in it.options})
    bad = [o for o in used if o not in CSV_OPTION_IDS]
    if bad:
        raise ValueError(f"option ids {bad} cannot be written to the content CSV (use a..j "
                         f"or the JSON format)")
    opt_cols = [f"option_{o}" for o in CSV_OPTION_IDS[: max(n_opt, len(used), 5)]]
    header = ["id", "skill", "stem", *opt_cols, "key", "explanation", "difficulty", "tags",
              "enemies", "status", "model", "author"]
    with _opened(target, "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for it in items:
            text = {o.id: o.text for o in it.options}
            w.writerow([csv_cell(str(cell)) for cell in (
                it.external_id, it.skill, it.stem,
                *(text.get(c[len("option_"):], "") for c in opt_cols), it.key,
                it.explanation, "" if it.difficulty is None else it.difficulty,
                ";".join(it.tags), ";".join(it.enemies), it.status, it.model, it.author or "")])


def with_symmetric_enemies(items: Sequence[ItemContent]) -> tuple[ItemContent, ...]:
    """Items whose enemy lists are closed under symmetry (A lists B ⇒ B lists A)."""
    ids = {it.external_id for it in items}
    extra: dict[str, set[str]] = {i: set() for i in ids}
    for it in items:
        for e in it.enemies:
            if e in extra:
                extra[e].add(it.external_id)
    return tuple(replace(it, enemies=tuple(sorted(set(it.enemies) | extra[it.external_id])))
                 for it in items)


def records_from_table(table: ItemTable, source: str = "parameters",
                       provisional: bool | None = None) -> tuple[ParameterRecord, ...]:
    """`ParameterRecord` values from an `irt.io.ItemTable` (``se_*``, ``n_responses`` and
    ``provisional`` extra columns are read when present)."""
    out = []
    extra = table.extra

    @overload
    def num(col: str, k: int, as_int: Literal[False] = False) -> float | None: ...
    @overload
    def num(col: str, k: int, as_int: Literal[True]) -> int | None: ...

    def num(col: str, k: int, as_int: bool = False) -> float | int | None:
        text = extra.get(col, [""] * len(table.bank))[k].strip()
        if not text or text.lower() == "nan":  # NaN: not estimated (fixed, anchored, common a)
            return None
        try:
            value = float(text)
            if as_int:
                if value != int(value) or value < 0:
                    raise ValueError
                return int(value)
            if not np.isfinite(value):
                raise ValueError
            return value
        except ValueError:
            raise FormatError(f"{source}: item {table.bank.item_ids[k]!r}: field {col!r}: not "
                              f"a valid number: {text!r}") from None

    for k, params in enumerate(table.bank.params()):
        if not params.a > 0:  # calibration may show a negative slope; the bank keeps a > 0
            where = f"line {table.lines[k]}: " if k < len(table.lines) else ""
            raise FormatError(f"{source} {where}item {params.item_id!r}: field 'a' must be > 0 "
                              f"in the bank, got {params.a:g} (a negative slope: the item runs "
                              f"against the scale; fix its key or reverse-score it)")
        prov_text = extra.get("provisional", [""] * len(table.bank))[k].strip().lower()
        if prov_text not in ("", "true", "false", "1", "0", "yes", "no"):
            raise FormatError(f"{source}: item {params.item_id!r}: field 'provisional': expected "
                              f"true or false, got {prov_text!r}")
        prov = prov_text in ("true", "1", "yes") if provisional is None else provisional
        out.append(ParameterRecord(params, num("se_a", k), num("se_b", k), num("se_c", k),
                                   num("se_d", k), num("n_responses", k, True), prov))
    return tuple(out)


def parameter_columns(records: Sequence[ParameterRecord]) -> dict[str, list[str]]:
    """The extra columns of the parameters CSV (``se_*``, ``n_responses``, ``provisional``)."""

    def opt(value: float | None) -> str:
        return "" if value is None else repr(float(value))

    return {
        "se_a": [opt(r.se_a) for r in records], "se_b": [opt(r.se_b) for r in records],
        "se_c": [opt(r.se_c) for r in records], "se_d": [opt(r.se_d) for r in records],
        "n_responses": ["" if r.n_responses is None else str(r.n_responses) for r in records],
        "provisional": ["true" if r.provisional else "false" for r in records],
    }
