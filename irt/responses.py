"""Response data: dense persons × items matrices with a mask, and the sparse long format.

Dense responses are ``(n_persons, n_items)`` arrays; missing entries are NaN (float input) or
``False`` in an explicit ``mask`` (True = observed). Sparse responses (`SparseResponses`) keep one
row per observed response (person index, item index, scored category), which is how adaptive-test
logs look (most entries missing) and what the long-format CSV holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.params import Bank

if TYPE_CHECKING:  # imported where used: scipy costs ~0.1 s of start-up
    import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class SparseResponses:
    """Observed responses in long format: ``response[j]`` is person ``person[j]`` on ``item[j]``.

    Use `from_dense` or `validated` to build one; each (person, item) pair appears at most once.
    """

    person: NDArray[np.int64]
    item: NDArray[np.int64]
    response: NDArray[np.int64]
    n_persons: int
    n_items: int

    @property
    def n_responses(self) -> int:
        return int(self.response.shape[0])

    @classmethod
    def from_dense(cls, responses: ArrayLike, mask: ArrayLike | None = None) -> SparseResponses:
        x, m = dense_with_mask(responses, mask)
        p, i = np.nonzero(m)
        return cls(p.astype(np.int64), i.astype(np.int64), x[p, i].astype(np.int64),
                   x.shape[0], x.shape[1])

    @classmethod
    def validated(cls, person: ArrayLike, item: ArrayLike, response: ArrayLike,
                  n_persons: int, n_items: int) -> SparseResponses:
        """Check index ranges and duplicates; raises `ValueError` naming the first bad row."""
        person = np.asarray(person, dtype=np.int64)
        item = np.asarray(item, dtype=np.int64)
        resp = np.asarray(response)
        if not (person.shape == item.shape == resp.shape) or person.ndim != 1:
            raise ValueError(f"person, item and response must be 1-D of equal length, got "
                             f"{person.shape}, {item.shape}, {resp.shape}")
        if resp.dtype.kind == "f":
            bad = ~np.isfinite(resp) | (resp != np.round(resp))
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValueError(f"row {j}: response {resp[j]!r} is not an integer category")
        resp = resp.astype(np.int64)
        for name, arr, hi in (("person", person, n_persons), ("item", item, n_items)):
            bad = (arr < 0) | (arr >= hi)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValueError(f"row {j}: {name} index {arr[j]} out of range [0, {hi})")
        key = person * max(n_items, 1) + item
        order = np.argsort(key, kind="stable")
        dup = np.flatnonzero(np.diff(key[order]) == 0)
        if dup.size:
            j = int(order[dup[0] + 1])
            raise ValueError(f"row {j}: person {person[j]} answered item {item[j]} twice")
        return cls(person, item, resp, int(n_persons), int(n_items))

    def check_categories(self, bank: Bank) -> None:
        """Raise `ValueError` naming the row when a response is outside ``0 … K_i − 1``."""
        if len(bank) != self.n_items:
            raise ValueError(f"responses cover {self.n_items} items but the bank has {len(bank)}")
        hi = bank.n_categories[self.item]
        bad = (self.response < 0) | (self.response >= hi)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            i = int(self.item[j])
            raise ValueError(f"row {j}: response {self.response[j]} out of range for item "
                             f"{bank.item_ids[i]!r} ({bank.models[i]}, categories 0..{hi[j] - 1})")

    def onehot(self, n_categories: int) -> sp.csr_matrix:
        """CSR indicator matrix ``(n_persons, n_items · K)``: column ``item · K + response``."""
        import scipy.sparse as sp

        cols = self.item * n_categories + self.response
        data = np.ones(self.n_responses)
        return sp.csr_matrix((data, (self.person, cols)),
                             shape=(self.n_persons, self.n_items * n_categories))

    def counts_per_person(self) -> NDArray[np.int64]:
        return np.bincount(self.person, minlength=self.n_persons)


def dense_with_mask(responses: ArrayLike, mask: ArrayLike | None = None
                    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Split a dense response matrix into integer categories and an observed-mask.

    NaN entries are missing; so are entries where ``mask`` is False. Raises `ValueError` on
    non-integer values, on a mask of another shape, or on input that is not 2-D.
    """
    x = np.asarray(responses)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"responses must be (n_persons, n_items), got shape {x.shape}")
    observed = np.ones(x.shape, dtype=bool)
    if x.dtype.kind == "f":
        observed &= ~np.isnan(x)
        fin = np.where(observed, x, 0.0)
        bad = observed & (~np.isfinite(fin) | (fin != np.round(fin)))
        if bad.any():
            p, i = np.argwhere(bad)[0]
            raise ValueError(f"response of person {p} to item {i} is not an integer: {x[p, i]!r}")
        x = fin
    elif x.dtype.kind not in "iub":
        raise ValueError(f"responses must be numeric, got dtype {x.dtype}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != x.shape:
            raise ValueError(f"mask shape {m.shape} does not match responses shape {x.shape}")
        observed &= m
    return np.where(observed, x, 0).astype(np.int64), observed


def check_dense(x: NDArray[np.int64], observed: NDArray[np.bool_], bank: Bank) -> None:
    """Raise `ValueError` when shapes disagree or an observed response is out of range."""
    if x.shape[1] != len(bank):
        raise ValueError(f"responses have {x.shape[1]} item columns but the bank has "
                         f"{len(bank)} items")
    bad = observed & ((x < 0) | (x >= bank.n_categories[None, :]))
    if bad.any():
        p, i = np.argwhere(bad)[0]
        raise ValueError(f"response {x[p, i]} of person {p} out of range for item "
                         f"{bank.item_ids[i]!r} ({bank.models[i]}, categories "
                         f"0..{bank.n_categories[i] - 1})")


def as_sparse(responses: ArrayLike | SparseResponses, bank: Bank,
              mask: ArrayLike | None = None) -> SparseResponses:
    """Validated `SparseResponses` for ``bank`` from dense or sparse input."""
    if isinstance(responses, SparseResponses):
        if mask is not None:
            raise ValueError("mask applies to dense responses only")
        responses.check_categories(bank)
        return responses
    x, observed = dense_with_mask(responses, mask)
    check_dense(x, observed, bank)
    return SparseResponses.from_dense(x, observed)
