"""Classical item analysis of a response log: proportion correct, option point-biserials
(distractor analysis) and the "possibly miskeyed" flag.

For item ``i`` and each of its options ``k``, over the persons who answered the item with a
known choice, the **option point-biserial** is the Pearson correlation between the indicator
"chose ``k``" and the person's ability (Crocker & Algina 1986, ch. 14; Haladyna 2004, ch. 9):

``r_ik = (M_k − M) / S · sqrt(p_k / (1 − p_k))``

with ``M_k`` the mean ability of those who chose ``k``, ``M`` and ``S`` the mean and SD of all
of them, and ``p_k`` the share who chose ``k``. A working item has a positive ``r`` for its key
and negative ones for its distractors.

The ability is the item-excluded one: the posterior mean of θ given the person's *other*
responses of the skill (`calibration.fit.rest_predictions`). In an adaptive test the number
correct is not comparable between persons, and an ability that includes the item would pull
the key's correlation up (the "corrected" point-biserial of the classical literature).

**Possibly miskeyed** (Haladyna 2004; Attali & Fraenkel 2000) when, with at least
``min_responses`` known choices, the estimated slope is ``≤ 0`` or the key's point-biserial is
significantly negative: below ``−z/√n`` with ``z = MISKEY_Z`` (a one-sided 1 % test of r = 0;
the SE of a correlation near 0 is about 1/√n). A hard item that nobody knows has a key
correlation near 0, and chance alone makes half of those slightly negative. The flag names the
option that behaves like a key: the non-key option with the largest positive point-biserial
(none when no option correlates positively). The slope is used only for its sign, so the flag
works as well with slopes free to be negative as with slopes bounded above 0 (then the key's
point-biserial decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Fewest responses with a known choice before an item can be flagged.
MIN_RESPONSES = 30
#: The key's point-biserial must be below −MISKEY_Z/√n to flag the item (one-sided 1 %).
MISKEY_Z = 2.326


@dataclass(frozen=True)
class OptionStatistics:
    """One option of one item: its label, how many chose it, the share, the point-biserial."""

    option: str
    is_key: bool
    n: int
    share: float
    point_biserial: float


@dataclass(frozen=True)
class ItemAnalysis:
    """Classical statistics of one item.

    ``p_correct`` is the mean score over all its responses; ``options`` is empty when no
    response recorded the chosen option. ``miskeyed`` names the suspected key (``""`` for none)
    with ``reason``.
    """

    item_id: str
    n: int
    p_correct: float
    n_with_choice: int
    options: tuple[OptionStatistics, ...]
    key_point_biserial: float
    possibly_miskeyed: bool
    suspected_key: str
    reason: str


def point_biserial(indicator: ArrayLike, ability: ArrayLike) -> float:
    """Pearson correlation of a 0/1 indicator with ability (NaN when either is constant)."""
    x = np.asarray(indicator, dtype=float)
    y = np.asarray(ability, dtype=float)
    if x.size < 2:
        return float("nan")
    sx, sy = float(np.std(x)), float(np.std(y))
    if sx == 0.0 or sy == 0.0:
        return float("nan")
    return float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy))


def analyse_items(item_ids: Sequence[str], item: ArrayLike, score: ArrayLike, choice: ArrayLike,
                  ability: ArrayLike, options: Sequence[Sequence[str]], keys: Sequence[str],
                  slopes: ArrayLike | None = None, *, min_responses: int = MIN_RESPONSES
                  ) -> tuple[ItemAnalysis, ...]:
    """Item analysis of every item of ``item_ids``.

    Parameters
    ----------
    item_ids : the items (``item`` indexes into it).
    item, score : per response, the item position and the scored response (0/1).
    choice : per response, the position of the chosen option in ``options[item]``, −1 unknown.
    ability : per response, the person's item-excluded ability (module docstring).
    options : per item, its option labels ("a", "b", … or the bank's option ids).
    keys : per item, the label of its key ("" when unknown).
    slopes : per item, the estimated slope (NaN or None: not estimated).
    min_responses : fewest known choices before flagging.
    """
    it = np.asarray(item, dtype=np.int64)
    sc = np.asarray(score, dtype=float)
    ch = np.asarray(choice, dtype=np.int64)
    ab = np.asarray(ability, dtype=float)
    n_items = len(item_ids)
    if not (it.shape == sc.shape == ch.shape == ab.shape):
        raise ValueError("item, score, choice and ability must have one value per response")
    if len(options) != n_items or len(keys) != n_items:
        raise ValueError(f"options and keys must have one entry per item ({n_items})")
    slope = (np.full(n_items, np.nan) if slopes is None
             else np.asarray(slopes, dtype=float))
    order = np.argsort(it, kind="stable")
    bounds = np.searchsorted(it[order], np.arange(n_items + 1))
    out = []
    for i, iid in enumerate(item_ids):
        rows = order[bounds[i]: bounds[i + 1]]
        n = int(rows.size)
        p = float(np.mean(sc[rows])) if n else float("nan")
        known = rows[ch[rows] >= 0]
        labels = tuple(options[i])
        stats = []
        for k, label in enumerate(labels):
            chose = ch[known] == k
            stats.append(OptionStatistics(label, label == keys[i], int(chose.sum()),
                                          float(chose.mean()) if known.size else float("nan"),
                                          point_biserial(chose, ab[known])))
        key_r = next((s.point_biserial for s in stats if s.is_key), float("nan"))
        if not known.size:
            # no recorded choice: the key's point-biserial is that of the score
            key_r = point_biserial(sc[rows], ab[rows])
        flagged, suspect, reason = _miskey(stats, key_r, float(slope[i]),
                                           int(known.size or n), min_responses)
        out.append(ItemAnalysis(iid, n, p, int(known.size), tuple(stats), key_r, flagged,
                                suspect, reason))
    return tuple(out)


def _miskey(stats: list[OptionStatistics], key_r: float, slope: float, n: int,
            min_responses: int) -> tuple[bool, str, str]:
    if n < min_responses:
        return False, "", f"not checked: {n} < {min_responses} responses"
    negative_slope = np.isfinite(slope) and slope <= 0
    negative_key = np.isfinite(key_r) and key_r < -MISKEY_Z / np.sqrt(n)
    if not (negative_slope or negative_key):
        return False, "", ""
    rivals = [s for s in stats if not s.is_key and np.isfinite(s.point_biserial)
              and s.point_biserial > 0]
    suspect = max(rivals, key=lambda s: s.point_biserial).option if rivals else ""
    why = (f"slope {slope:.2f} <= 0" if negative_slope
           else f"the key correlates negatively with ability (r = {key_r:.2f})")
    if suspect:
        best = max(r.point_biserial for r in rivals)
        why += f"; option {suspect!r} behaves like the key (r = {best:.2f})"
    else:
        why += "; no other option correlates positively with ability"
    return True, suspect, why


def option_indices(chosen: Sequence[str], labels: Sequence[str]) -> NDArray[np.int64]:
    """Positions of chosen option labels in ``labels`` (case-insensitive, −1 when absent)."""
    where = {str(label).strip().lower(): k for k, label in enumerate(labels)}
    return np.array([where.get(str(c).strip().lower(), -1) for c in chosen], dtype=np.int64)
