"""One battery over every selector, exposure control and stopping rule (cf. sklearn's
check_estimator): no item twice, every min/max respected, exclusions respected, exhausted banks
handled, deterministic under a seed, JSON round-trip mid-test, and the batch simulator equal to
the per-session engine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import engine
import irt
from engine._rng import derive_seed
from engine.simulation import draw_answers, simulate

SELECTORS = [engine.MaxInfo(), engine.KLInfo(switch_after=4), engine.PosteriorWeightedInfo(),
             engine.BMatching(), engine.AStratified(n_strata=3), engine.COptimal()]
EXPOSURES = [engine.NoExposureControl(), engine.Randomesque(k=4),
             engine.SympsonHetter({"api0001": 0.3, "api0002": 0.5, "sec2_0003": 0.2}),
             engine.ExposureCap(max_rate=0.2),
             engine.SympsonHetter({"api0001": 0.3, "db0002": 0.5}, progressive=3)]
STOPPING = {
    "se": dict(se_target=0.4),
    "fixed": dict(se_target=None),
    "sprt": dict(se_target=None, classification=engine.Classification(cut=0.2, delta=0.4)),
    "ci": dict(se_target=0.25, classification=engine.Classification(
        cut={"api": 0.0, "db": 0.5}, method="ci", level=0.9)),
    # the composite rule: one class, its registry entry, and this row
    "composite": dict(se_target=None, stopping=(engine.CompositeSE(
        0.45, weights={"api": 2.0, "db": 1.0}, min_items={"sec": 3}),)),
    "map_composite": dict(se_target=0.5, correlations=((1, 0.5, 0.3), (0.5, 1, 0.4),
                                                       (0.3, 0.4, 1)),
                          stopping=(engine.CompositeSE(0.35),)),
    "open_balancer": dict(se_target=0.4, balancer=engine.OpenSkills()),
    "minimums_first": dict(se_target=None, balancer=engine.MinimumsFirst(),
                           stopping=(engine.CompositeSE(0.4, weights={"api": 1.0, "sec": 2.0}),)),
}
SKILLS = (engine.SkillSpec("api", min_items=3, max_items=8, weight=2.0),
          engine.SkillSpec("db", min_items=2, max_items=6),
          engine.SkillSpec("sec", min_items=2, max_items=5))
GRID_ONLY = {"map_composite"}  # mpwi needs a posterior on the grid
CASES = [(s, e, k) for s in SELECTORS for e in EXPOSURES[:1] for k in STOPPING
         if not (s.name == "mpwi" and k in GRID_ONLY)] + \
        [(s, e, "se") for s in SELECTORS[:2] for e in EXPOSURES[1:]] + \
        [(engine.DOptimal(), e, "map_composite") for e in EXPOSURES[1:]] + \
        [(engine.COptimal(), e, k) for e in EXPOSURES[1:]
         for k in ("map_composite", "minimums_first")] + \
        [(engine.COptimal(weights={"db": 1.0, "sec": 1.0}), EXPOSURES[-1], "open_balancer")]


def _ids(case):
    s, e, k = case
    extra = "-progressive" if getattr(e, "progressive", 0) else ""
    weights = "-weighted" if getattr(s, "weights", None) else ""
    return f"{s.name}{weights}-{e.name}{extra}-{k}"


@pytest.fixture(scope="module")
def pool(mixed_bank):
    ids = mixed_bank.item_ids
    status = ["operational"] * len(ids)
    for k in (5, 47, 90):
        status[k] = "retired"
    for k in (10, 60, 110):
        status[k] = "pretest"
    rates = {ids[0]: 0.5, ids[3]: 0.3, ids[41]: 0.01}
    return engine.ItemPool(mixed_bank, status=status,
                           enemy_groups=[(ids[0], ids[1], ids[2]), (ids[40], ids[41])],
                           tags={ids[7]: ("leaked",), ids[8]: ("draft", "x")},
                           exposure_rates=rates)


def _blueprint(sel, exp, stop, **kw):
    return engine.Blueprint(skills=SKILLS, min_items=10, max_items=16, selector=sel,
                            exposure=exp, exclude_tags=("leaked",), seed=11,
                            **STOPPING[stop], **kw)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_conformance(case, pool, driver):
    sel, exp, stop = case
    bp = _blueprint(sel, exp, stop)
    assert engine.Blueprint.from_json(bp.to_json()) == bp
    eng = engine.CatEngine(pool, bp)
    thetas = np.random.default_rng(1).normal(size=(6, 3))
    answers = draw_answers(eng, thetas, 2)
    seeds = [derive_seed(bp.seed, p) for p in range(6)]
    batch = simulate(eng, thetas, answers=answers, seeds=seeds)
    ids = pool.bank.item_ids
    for p in range(6):
        state = driver(eng, answers[p], seeds[p])
        served = [e.item_id for e in state.events]
        # never re-administers; exclusions hold
        assert len(served) == len(set(served))
        assert not {ids[5], ids[47], ids[90], ids[7]} & set(served)
        assert sum(i in served for i in ids[0:3]) <= 1
        assert sum(i in served for i in ids[40:42]) <= 1
        assert all(e.scored for e in state.events)  # no pretest configured
        # min/max per skill and overall
        n = {s: len(state.trajectory[s]) for s in ("api", "db", "sec")}
        assert 10 <= sum(n.values()) <= 16
        for spec in SKILLS:
            assert spec.min_items <= n[spec.skill] <= spec.max_items
        assert state.stop_reason in engine.STOP_REASONS
        # the audit: one record per served item, rank within the candidates
        for e in state.events:
            assert e.audit.skill == e.skill
            assert 1 <= e.audit.rank <= e.audit.n_candidates
            assert e.audit.exposure == exp.name
        # deterministic, and a JSON round-trip mid-test changes nothing
        again = driver(eng, answers[p], seeds[p], roundtrip_at=4)
        assert again.to_json() == state.to_json()
        # the batch simulator is the same engine
        est = eng.estimates(state)
        for k, s in enumerate(eng.skill_names):
            assert batch.theta_hat[p, k] == est[s].theta
            assert batch.se[p, k] == est[s].se
            assert batch.n_items[p, k] == est[s].n_items
            assert (batch.decision[p, k] or None) == est[s].decision
            assert batch.decided[p, k] == est[s].decided
        assert batch.stop_reason[p] == state.stop_reason
        assert [pool.bank.item_ids[i] for i in batch.items[p] if i >= 0] == served


def test_exhausted_bank_stops_cleanly(mixed_bank, driver):
    small = mixed_bank.take(range(6))  # six api items
    for sel in SELECTORS:
        eng = engine.CatEngine(small, engine.Blueprint(selector=sel, se_target=0.01))
        state = driver(eng, np.ones(6, dtype=int), 3)
        assert state.stop_reason == "bank_exhausted"
        assert len(state.events) == 6
        assert eng.next_item(state) is None
        res = simulate(eng, np.zeros(2), answers=np.ones((2, 6), dtype=int))
        assert res.stop_reason == ("bank_exhausted",) * 2


def test_registry_round_trips_every_strategy():
    for kind, classes in engine.REGISTRY.items():
        assert classes, kind
        for cls in classes.values():
            obj = cls()
            assert engine.strategy_from_dict(kind, obj.to_dict()) == obj


def test_different_seeds_give_different_randomesque_tests(pool, driver):
    bp = _blueprint(engine.MaxInfo(), engine.Randomesque(k=5), "fixed")
    eng = engine.CatEngine(pool, bp)
    answers = np.zeros(len(pool), dtype=int)
    tests = {tuple(e.item_id for e in driver(eng, answers, s).events) for s in range(8)}
    assert len(tests) > 4


def test_pretest_slots_in_live_sessions_and_the_simulator(pool, driver):
    bp = _blueprint(engine.MaxInfo(), engine.Randomesque(k=3), "se", pretest_count=2,
                    pretest_positions=(2, 6))
    eng = engine.CatEngine(pool, bp)
    thetas = np.random.default_rng(3).normal(size=(5, 3))
    answers = draw_answers(eng, thetas, 4)
    seeds = [derive_seed(bp.seed, p) for p in range(5)]
    batch = simulate(eng, thetas, answers=answers, seeds=seeds)
    for p in range(5):
        state = driver(eng, answers[p], seeds[p], roundtrip_at=3)
        pre = [k + 1 for k, e in enumerate(state.events) if not e.scored]
        assert pre == [2, 6]
        scored = [e.item_id for e in state.events if e.scored]
        assert [pool.bank.item_ids[i] for i in batch.items[p] if i >= 0] == scored


@pytest.mark.parametrize("selector", [engine.MaxInfo(), engine.DOptimal(), engine.COptimal(),
                                      engine.BMatching()], ids=lambda s: s.name)
def test_a_bank_wide_criterion_gives_the_sessions_of_one_criterion_per_skill(selector, driver):
    """Item-wise selectors score the competing skills of a dichotomous bank in one bank-wide
    context; the same selector evaluated skill by skill (``item_wise`` off) gives the same
    sessions, number for number, live and in the simulator, with and without exposure
    control, for independent skills and under a correlated prior."""
    def merged(*banks: irt.Bank) -> irt.Bank:
        return irt.Bank.from_params([p for b in banks for p in b.params()])

    bank = merged(irt.generate_items(30, "2pl", 1, skill="api", prefix="api"),
                  irt.generate_items(30, "3pl", 2, skill="db", prefix="db"),
                  irt.generate_items(15, "2pl", 3, skill="sec", prefix="s2_"),
                  irt.generate_items(15, "3pl", 4, skill="sec", prefix="s3_"))
    pool = engine.ItemPool(bank, enemy_groups=[(bank.item_ids[0], bank.item_ids[31])])
    designs = [dict(balancer=engine.OpenSkills(), se_target=0.4,
                    exposure=engine.SympsonHetter({"api0001": 0.3, "db0002": 0.5},
                                                  progressive=2)),
               dict(balancer=engine.MinimumsFirst(), se_target=None,
                    exposure=engine.Randomesque(k=3),
                    correlations=((1, 0.5, 0.3), (0.5, 1, 0.4), (0.3, 0.4, 1)),
                    stopping=(engine.CompositeSE(0.35),))]
    thetas = np.random.default_rng(3).normal(size=(8, 3))
    for design in designs:
        def build(sel: engine.Selector, design: dict = design) -> engine.CatEngine:
            return engine.CatEngine(pool, engine.Blueprint(
                skills=SKILLS, min_items=8, max_items=14, selector=sel, seed=5, **design))

        one = build(selector)
        rule = one.selector  # the blueprint's rule (a correlated prior makes mfi D-optimal)
        per_skill = type("PerSkill", (type(rule),), {"item_wise": False})
        loop = build(per_skill(**{f.name: getattr(rule, f.name)
                                  for f in dataclasses.fields(rule)}))
        assert type(loop.selector) is per_skill
        assert type(one.selector).item_wise and not type(loop.selector).item_wise
        answers = draw_answers(one, thetas, 4)
        a, b = simulate(one, thetas, answers=answers), simulate(loop, thetas, answers=answers)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.theta_hat, b.theta_hat)
        for p in range(len(thetas)):
            x, y = driver(one, answers[p], 100 + p), driver(loop, answers[p], 100 + p)
            assert x.to_json() == y.to_json()
