"""Linking and drift: exact recovery of (A, B), recovery under estimation noise, purification,
drift flags."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from calibration.drift import ParameterErrors, drift
from calibration.linking import METHODS, LinkingTransform, link, transform_bank

TRUE_A, TRUE_B = 1.25, -0.6


def _new_scale(base: irt.Bank) -> irt.Bank:
    # θ_new = (θ_base − B)/A, so linking new → base must find (A, B)
    return LinkingTransform(TRUE_A, TRUE_B).inverse().apply(base)


def _noisy(bank: irt.Bank, rng: np.random.Generator, sd_b: float = 0.05,
           sd_loga: float = 0.04) -> irt.Bank:
    """Parameters with estimation-sized errors (2PL at about n = 2,000 per item)."""
    items = []
    for it in bank.params():
        a = it.a * np.exp(rng.normal(0, sd_loga))
        if it.is_dichotomous:
            items.append(irt.ItemParams(it.item_id, it.model, a, it.b + rng.normal(0, sd_b),
                                        it.c, it.d, skill=it.skill))
        else:
            th = np.sort(np.asarray(it.thresholds) + rng.normal(0, sd_b, len(it.thresholds)))
            items.append(irt.ItemParams(it.item_id, it.model, a, thresholds=tuple(th),
                                        skill=it.skill))
    return irt.Bank.from_params(items)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["2pl", "3pl", "grm", "gpcm"])
def test_exact_parameters_give_the_exact_transformation(method: str, model: str) -> None:
    base = irt.generate_items(12, model, 3)
    res = link(_new_scale(base), base, method)
    assert pytest.approx(TRUE_A, abs=1e-5) == res.A
    assert pytest.approx(TRUE_B, abs=1e-5) == res.B
    np.testing.assert_allclose(res.linked.a, base.a, atol=1e-5)
    np.testing.assert_allclose(res.linked.thresholds, base.thresholds, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_recovery_within_005_on_20_noisy_common_items(method: str) -> None:
    rng = np.random.default_rng(11)
    base = irt.generate_items(20, "2pl", rng)
    errors = []
    for _ in range(10):
        res = link(_noisy(_new_scale(base), rng), _noisy(base, rng), method)
        errors.append((res.A - TRUE_A, res.B - TRUE_B))
    # RMSE over replications; single mean-sigma replications can exceed 0.05 (its A rests on
    # the SD of 20 noisy b's), which is why Stocking–Lord is the default
    rmse = np.sqrt(np.mean(np.square(errors), axis=0))
    assert np.all(rmse < 0.05), rmse
    if method in ("haebara", "stocking-lord"):
        assert np.max(np.abs(errors)) < 0.05, errors


@pytest.mark.parametrize(("ours", "theirs"), [("haebara", "haebara"),
                                              ("stocking-lord", "stocking_lord"),
                                              ("mean-sigma", "mean_sigma")])
def test_agrees_with_mirt_link(ours: str, theirs: str) -> None:
    mirt = pytest.importorskip("mirt")
    from mirt.models.dichotomous import TwoParameterLogistic

    rng = np.random.default_rng(9)
    base = irt.generate_items(30, "2pl", rng)
    new = _new_scale(_noisy(base, rng))

    def model(bank: irt.Bank):
        m = TwoParameterLogistic(len(bank))
        m.set_parameters(discrimination=bank.a.copy(), difficulty=bank.b.copy())
        return m

    idx = list(range(30))
    ref = mirt.link(model(base), model(new), idx, idx, method=theirs, compute_diagnostics=False)
    # mirt's default grid: 61 points on ±4 with normal-density weights
    res = link(new, base, ours, grid=irt.normal_grid(61, half_width=4.0))
    assert abs(res.A - ref.constants.A) < 1e-4
    assert abs(res.B - ref.constants.B) < 1e-4


def test_mixed_bank_and_uncommon_items() -> None:
    base = irt.Bank.from_params([*irt.generate_items(8, "2pl", 1).params(),
                                 *irt.generate_items(4, "grm", 2, prefix="p").params()])
    extra = irt.generate_items(3, "3pl", 5, prefix="new").params()
    new = irt.Bank.from_params([*_new_scale(base).params(), *extra])
    res = link(new, base, "stocking-lord")
    assert pytest.approx(TRUE_A, abs=1e-5) == res.A
    assert len(res.linked) == len(new)
    assert set(res.common) == set(base.item_ids)
    # the new-only items move with the same transformation
    k = res.linked.index("new0001")
    assert res.linked.a[k] == pytest.approx(extra[0].a / TRUE_A, rel=1e-5)
    assert res.linked.b[k] == pytest.approx(TRUE_A * extra[0].b + TRUE_B, abs=1e-5)


def test_purification_drops_the_drifting_anchors() -> None:
    rng = np.random.default_rng(5)
    base = irt.generate_items(20, "2pl", rng)
    moved = _noisy(_new_scale(base), rng, sd_b=0.04, sd_loga=0.03)
    items = moved.params()
    shifted = {"i0003", "i0011"}
    items = [irt.ItemParams(it.item_id, it.model, it.a, it.b + (1.0 if it.item_id in shifted
                                                                   else 0.0))
             for it in items]
    new = irt.Bank.from_params(items)
    plain = link(new, base, "stocking-lord")
    pure = link(new, base, "stocking-lord", purify=True)
    assert set(pure.dropped) == shifted
    assert abs(pure.B - TRUE_B) < abs(plain.B - TRUE_B)
    assert abs(pure.B - TRUE_B) < 0.05


def test_bad_input_is_named() -> None:
    base = irt.generate_items(5, "2pl", 1)
    other = irt.generate_items(5, "2pl", 1, prefix="x")
    with pytest.raises(ValueError, match="at least 2 common items"):
        link(other, base)
    with pytest.raises(ValueError, match="unknown linking method"):
        link(base, base, "median")
    with pytest.raises(ValueError, match="'zzz' is not in the new"):
        link(base, base, common=["zzz"])
    grm = irt.generate_items(5, "grm", 1)
    with pytest.raises(ValueError, match="common item 'i0001': model grm"):
        link(grm, base)
    with pytest.raises(ValueError, match="A must be"):
        transform_bank(base, 0.0, 1.0)


def test_drift_flags_shifted_items_only() -> None:
    rng = np.random.default_rng(21)
    current = irt.generate_items(25, "2pl", rng)
    new_items = []
    for it in _new_scale(current).params():
        b = it.b + (0.8 / TRUE_A if it.item_id == "i0007" else 0.0)
        a = it.a * (2.0 if it.item_id == "i0015" else 1.0)
        new_items.append(irt.ItemParams(it.item_id, "2pl", a, b))
    new = _noisy(irt.Bank.from_params(new_items), rng, sd_b=0.05, sd_loga=0.04)
    se = ParameterErrors(np.full(25, 0.05), np.full(25, 0.07))
    res = drift(current, new, se_current=se, se_new=se)
    assert set(res.flagged_ids) == {"i0007", "i0015"}
    k = res.item_ids.index("i0007")
    assert res.flag_b[k] and res.diff_b[k] == pytest.approx(0.8, abs=0.2)
    assert res.flag_a[res.item_ids.index("i0015")]
    # purification works on b displacements: the b-shifted item left the anchor set
    assert res.linking.dropped == ("i0007",)
    rows = res.to_rows()
    assert len(rows) == 25 and rows[k][-1] == "b"
    # without the new SEs an item is not tested (the size rule alone flags noise), and the
    # rows say so; without the current SEs the current values count as exact
    res2 = drift(current, new)
    assert res2.to_rows()[0][13] == "not tested: no SE" and not res2.flagged.any()
    res3 = drift(current, new, se_new=se)
    assert res3.to_rows()[0][13] == "current SE unknown"
    assert set(res3.flagged_ids) == {"i0007", "i0015"}


def test_drift_links_each_skill_on_its_own_scale() -> None:
    rng = np.random.default_rng(22)
    first = irt.generate_items(12, "2pl", rng, skill="sql", prefix="s")
    second = irt.generate_items(12, "2pl", rng, skill="api", prefix="p")
    current = irt.Bank.from_params([*first.params(), *second.params()])
    # the new calibration puts each skill on its own scale (different A, B per skill)
    from calibration.linking import transform_bank
    new = irt.Bank.from_params([*transform_bank(first, 1.3, 0.5).params(),
                                *transform_bank(second, 0.8, -0.4).params()])
    se = ParameterErrors(np.full(24, 0.05), np.full(24, 0.05))
    res = drift(current, new, se_current=se, se_new=se)
    assert res.link_skills == ("sql", "api") and not res.flagged.any()
    np.testing.assert_allclose(res.b_new, res.b_current, atol=1e-4)


def test_huge_standard_errors_suppress_flags() -> None:
    current = irt.generate_items(10, "2pl", 4)
    items = [irt.ItemParams(it.item_id, "2pl", it.a, it.b + (0.5 if k == 2 else 0.0))
             for k, it in enumerate(current.params())]
    new = irt.Bank.from_params(items)
    big = ParameterErrors(np.full(10, 1.0), np.full(10, 1.0))
    assert not drift(current, new, se_current=big, se_new=big, purify=False).flagged.any()
    small = ParameterErrors(np.full(10, 0.01), np.full(10, 0.01))
    assert drift(current, new, se_current=small, se_new=small).flagged_ids == ("i0003",)
