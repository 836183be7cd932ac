"""Engine inputs for test security (issue 17): a session's ``exclude_items`` (a retake) and
`CatEngine.rescore` (effort-moderated scoring)."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from engine import Blueprint, CatEngine, CatState


def _engine(**kw: object) -> CatEngine:
    rng = np.random.default_rng(7)
    bank = irt.Bank.from_params(irt.ItemParams(f"I{k:02d}", "2pl", a=float(rng.uniform(0.8, 2)),
                                               b=float(rng.normal()), skill="s")
                                for k in range(40))
    return CatEngine(bank, Blueprint(max_items=10, se_target=None, **kw))  # type: ignore[arg-type]


def _run(eng: CatEngine, seed: int = 3) -> CatState:
    rng = np.random.default_rng(seed)
    st = eng.start(seed=seed)
    while not st.finished:
        st = eng.record(st, st.pending, int(rng.random() < 0.5))
    return st


def test_excluded_items_are_never_served_and_survive_the_blueprint_round_trip():
    first = _run(_engine())
    seen = tuple(e.item_id for e in first.events)
    bp = Blueprint.from_dict(Blueprint(max_items=10, se_target=None, exclude_items=seen)
                             .to_dict())
    assert bp.exclude_items == seen
    again = _run(_engine(exclude_items=seen))
    assert not set(seen) & {e.item_id for e in again.events}
    assert "exclude_items" not in Blueprint().to_dict()  # older stored blueprints unchanged


def test_rescore_without_drops_is_the_live_result_and_drops_change_it():
    eng = _engine()
    st = _run(eng)
    live = eng.estimates(st)["s"]
    same = eng.estimates(eng.rescore(st, []))["s"]
    assert (same.theta, same.se, same.n_items) == (live.theta, live.se, live.n_items)
    dropped = eng.rescore(CatState.from_dict(st.to_dict()), [1, 2, 3])
    est = eng.estimates(dropped)["s"]
    assert est.n_items == live.n_items - 3 and est.se > live.se
    # deterministic: a fresh engine dropping the same answers gives the same numbers
    again = _engine().estimates(_engine().rescore(st, [1, 2, 3]))["s"]
    assert again.theta == pytest.approx(est.theta, abs=0) and again.se == est.se
