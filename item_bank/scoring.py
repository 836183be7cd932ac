"""Response types and the one scoring function (issue 22).

Every path that turns a candidate's answer into an IRT category — the candidate pages, the API,
a re-scoring — goes through `canonical_answer` (the answer as the database stores it, or a
refusal naming the field) and `score_response` (the category). Both are pure: no database, no
request.

Response types (``Item.response_type``):

* ``single`` — one option (``key``); category 1 when it is the key, else 0.
* ``multiple`` — "select all that apply"; ``correct`` lists the correct option ids. With
  ``scoring = "partial"`` (the default) the category is the number of correct options chosen net
  of wrong ones, ``max(0, |S ∩ C| − |S ∖ C|)``, so categories run 0 … ``|C|`` and the item is
  calibrated with a partial-credit model (GPCM/PCM, or GRM); with ``"all_or_nothing"`` it is 1
  exactly when ``S = C`` (dichotomous). Subtracting wrong choices keeps "tick everything" from
  earning full credit (the net-correct rule of partial-credit multiple response scoring, e.g.
  Domnich et al. 2015; Muckle, Becker & Wu 2011 compare the dichotomous and polytomous forms).
* ``ordering`` — the options put in order; ``correct`` is the right order; exact match
  (dichotomous).
* ``numeric`` — a number typed in; ``correct`` lists the accepted values; exact match after
  reading the number (``3,5`` and ``3.50`` both read as 3.5).
* ``text`` — a short text typed in; ``correct`` lists the accepted answers; exact match after
  trimming, collapsing white space and ignoring case.

Stored answers (``responses.raw_answer``, at most `MAX_ANSWER_CHARS` characters): the option id
(single), the chosen ids comma-separated in option order (multiple), the ids in the candidate's
order (ordering), the number as read (numeric), the text trimmed (text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Protocol

RESPONSE_TYPES = ("single", "multiple", "ordering", "numeric", "text")
#: Response types whose answer is a choice among (or an order of) the item's options.
OPTION_TYPES = ("single", "multiple", "ordering")
#: Response types typed in by the candidate.
ENTRY_TYPES = ("numeric", "text")
SCORINGS = ("partial", "all_or_nothing")
#: Longest stored answer (the ``responses.raw_answer`` column).
MAX_ANSWER_CHARS = 200
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


class AnswerError(ValueError):
    """An answer that does not fit the item; ``field`` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field {field!r}: {message}")
        self.field = field


class ScoredItem(Protocol):
    """What scoring needs of an item (`item_bank.content.ItemContent`, the engine's facts)."""

    @property
    def response_type(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def correct(self) -> tuple[str, ...]: ...
    @property
    def scoring(self) -> str: ...
    @property
    def option_ids(self) -> tuple[str, ...]: ...


def is_polytomous(response_type: str, scoring: str, n_correct: int) -> bool:
    """True when the item is scored in more than two categories (partial-credit multiple
    response with at least two correct options)."""
    return response_type == "multiple" and scoring == "partial" and n_correct >= 2


def n_categories(item: ScoredItem) -> int:
    """Number of score categories: ``|C| + 1`` for partial-credit multiple response, else 2."""
    if is_polytomous(item.response_type, item.scoring, len(item.correct)):
        return len(item.correct) + 1
    return 2


def read_number(text: str) -> Decimal | None:
    """The number typed in ``text`` (``.`` or ``,`` as the decimal mark), None if it is not
    one."""
    t = text.strip().replace(" ", "")
    if not _NUMBER.match(t) or ("," in t and "." in t):
        return None
    try:
        return Decimal(t.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def normal_text(text: str) -> str:
    """Text as compared by exact-match scoring: trimmed, white space collapsed, case folded."""
    return _SPACE.sub(" ", text.strip()).casefold()


def _ids(value: str | Sequence[str], field: str) -> list[str]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")] if value.strip() else []
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        parts = [v.strip() for v in value]
    else:
        raise AnswerError(field, "expected a list of option ids")
    return parts


def canonical_answer(item: ScoredItem, value: str | Sequence[str], field: str = "answer") -> str:
    """The stored form of an answer to ``item`` (see the module docstring).

    ``value`` is a string (an option id, comma-separated ids, a number or a text) or a list of
    option ids. Raises `AnswerError` naming ``field`` when it does not fit the item.
    """
    rtype = item.response_type
    options = item.option_ids
    if rtype == "single":
        if not isinstance(value, str):
            raise AnswerError(field, "expected one option id (a string)")
        if value not in options:
            raise AnswerError(field, f"{value!r} is not one of the options {sorted(options)}")
        return value
    if rtype in ("multiple", "ordering"):
        ids = _ids(value, field)
        unknown = [i for i in ids if i not in options]
        if unknown:
            raise AnswerError(field, f"{unknown[0]!r} is not one of the options "
                                     f"{sorted(options)}")
        if len(set(ids)) != len(ids):
            raise AnswerError(field, "an option is given more than once")
        if rtype == "multiple":
            if not ids:
                raise AnswerError(field, "choose at least one option")
            chosen = set(ids)
            return ",".join(o for o in options if o in chosen)
        if len(ids) != len(options):
            raise AnswerError(field, f"put all {len(options)} options in order "
                                     f"(got {len(ids)})")
        return ",".join(ids)
    if not isinstance(value, str):
        raise AnswerError(field, "expected a string")
    text = _SPACE.sub(" ", value.strip())
    if not text:
        raise AnswerError(field, "must not be empty")
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerError(field, f"at most {MAX_ANSWER_CHARS} characters")
    if rtype == "numeric":
        number = read_number(text)
        if number is None:
            raise AnswerError(field, f"{text!r} is not a number")
        return text.replace(" ", "")
    if rtype == "text":
        return text
    raise AnswerError("response_type", f"unknown response type {rtype!r}")


def score_response(item: ScoredItem, raw_answer: str) -> int:
    """The IRT category of a stored answer (`canonical_answer`) to ``item``.

    single: ``[a = key]``; multiple, partial: ``max(0, |S ∩ C| − |S ∖ C|)``; multiple,
    all-or-nothing: ``[S = C]``; ordering: ``[order = C]``; numeric: ``[x ∈ C]`` as numbers;
    text: ``[normal(x) ∈ normal(C)]``. Raises `AnswerError` when the answer does not fit.
    """
    answer = canonical_answer(item, raw_answer)
    rtype = item.response_type
    if rtype == "single":
        return int(answer == item.key)
    if rtype == "multiple":
        chosen = set(answer.split(","))
        correct = set(item.correct)
        if is_polytomous(rtype, item.scoring, len(correct)):
            return max(0, len(chosen & correct) - len(chosen - correct))
        return int(chosen == correct)
    if rtype == "ordering":
        return int(tuple(answer.split(",")) == tuple(item.correct))
    if rtype == "numeric":
        x = read_number(answer)
        return int(any(read_number(c) == x for c in item.correct))
    return int(normal_text(answer) in {normal_text(c) for c in item.correct})
