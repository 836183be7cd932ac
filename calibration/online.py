"""Online calibration of pretest items on the operational scale.

Pretest items are seeded, unscored, into live adaptive tests; their responses come with the
operational responses of the same candidates. Two estimators put them on the operational scale
while the operational items stay exactly as they are:

* **Method A** (Stocking 1988), the cheaper one: each candidate's θ̂ is computed from the
  operational items only (EAP under N(0, 1) by default, with the operational parameters), then
  each pretest item is fitted by maximum likelihood treating θ̂ as known,
  ``max_φ Σ_p log P_i(x_pi | θ̂_p; φ) + log prior(φ)``. It ignores the error of θ̂, which
  flattens the estimated curve a little (a biased down by roughly
  ``1/√(1 + a² SE(θ̂)²/2.9)``, the probit approximation) — small after a CAT of 20–30 items.
* **MEM**, fixed-parameter calibration with multiple EM cycles (Kim 2006; Wainer & Mislevy
  1990): a marginal maximum likelihood EM over operational and pretest items together in which
  the operational items are anchors held at their parameters, the pretest items are re-estimated
  in every M-step and the latent distribution is re-estimated in every cycle (here its mean and
  SD, a normal latent density, where Kim's MEM updates a discrete histogram), so the pretest
  items land on the operational scale without any linking step. It uses the project's
  `calibration.mml.MMLCalibrator` with ``anchors``.

Standard errors: MEM from the calibrator (cross-product information); Method A from the inverse
observed information of the item's likelihood in (a, b, c, d, b_k), by central finite
differences at the optimum (θ̂ treated as known, so they understate the uncertainty slightly).

**Promotion.** A pretest item is ready to become operational when it has at least
``min_responses`` responses (default 300), ``SE(b) ≤ max_se_b`` (default 0.3; the mean threshold
for polytomous items), and ``a ≥ min_a`` (default 0.3; flatter items add little information).

References: Stocking (1988); Wainer & Mislevy (1990); Kim (2006); Ban, Hanson, Wang, Yi &
Harris (2001), who compare Method A, OEM and MEM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

from calibration.mml import MMLCalibrator
from calibration.results import ItemSpec, Priors
from irt import (
    POLYTOMOUS_MODELS,
    RASCH_MODELS,
    AbilityEstimates,
    Bank,
    ItemParams,
    SparseResponses,
    eap,
    mle,
    paired_category_derivatives,
    wle,
)
from irt.io import write_items_csv
from irt.models import PROB_FLOOR

logger = logging.getLogger(__name__)

METHODS = ("mem", "method-a")
MIN_RESPONSES = 300
MAX_SE_B = 0.3
MIN_A = 0.3
#: Relative step of the finite-difference Hessian.
HESSIAN_STEP = 1e-4


@dataclass(frozen=True, eq=False)
class PretestCalibration:
    """Pretest items calibrated on the operational scale.

    ``items`` is an `irt.Bank` of the pretest items; ``se_a, se_b, se_c, se_d`` have shape
    ``(n_items,)`` and ``se_thresholds`` ``(n_items, K_max − 1)`` (NaN where not estimated);
    ``n_responses`` responses per item (Method A: those from candidates with an
    operational θ̂); ``latent`` the ``(skill, mean, sd)`` of the calibration
    sample on the operational scale (MEM; Method A reports the mean and SD of θ̂).
    """

    items: Bank
    se_a: NDArray[np.float64]
    se_b: NDArray[np.float64]
    se_c: NDArray[np.float64]
    se_d: NDArray[np.float64]
    se_thresholds: NDArray[np.float64]
    n_responses: NDArray[np.int64]
    method: str
    latent: tuple[tuple[str, float, float], ...]
    min_responses: int
    max_se_b: float
    min_a: float

    @property
    def promotable(self) -> NDArray[np.bool_]:
        """Items meeting the promotion rule of the module docstring."""
        se_b = np.nan_to_num(self.se_b, nan=np.inf)
        return ((self.n_responses >= self.min_responses) & (se_b <= self.max_se_b)
                & (self.items.a >= self.min_a))

    def reasons(self) -> tuple[str, ...]:
        """Why each item is not promotable ('' when it is)."""
        out = []
        for k in range(len(self.items)):
            why = []
            if self.n_responses[k] < self.min_responses:
                why.append(f"{self.n_responses[k]} < {self.min_responses} responses")
            if not self.se_b[k] <= self.max_se_b:
                why.append(f"SE(b) {self.se_b[k]:.3g} > {self.max_se_b}")
            if self.items.a[k] < self.min_a:
                why.append(f"a {self.items.a[k]:.3g} < {self.min_a}")
            out.append("; ".join(why))
        return tuple(out)

    def write_csv(self, path: str | Path) -> None:
        """The pretest items in the DESIGN.md items format with ``se_*``, ``n_responses`` and
        ``promote`` columns (importable into the item bank)."""
        extra: dict[str, list] = {"se_a": list(self.se_a), "se_b": list(self.se_b),
                                  "se_c": list(self.se_c), "se_d": list(self.se_d)}
        for k in range(self.se_thresholds.shape[1] if not self.items.all_dichotomous else 0):
            extra[f"se_b{k + 1}"] = list(self.se_thresholds[:, k])
        extra["n_responses"] = [int(n) for n in self.n_responses]
        extra["promote"] = ["yes" if p else "no" for p in self.promotable]
        write_items_csv(path, self.items, {k: [float(v) if isinstance(v, np.floating) else v
                                               for v in vals] for k, vals in extra.items()})

    COLUMNS = ("item_id", "skill", "model", "a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d",
               "n_responses", "promote", "reason")

    def to_rows(self) -> list[tuple]:
        reasons = self.reasons()
        it = self.items
        return [(it.item_ids[k], it.skills[k], it.models[k], float(it.a[k]), float(it.b[k]),
                 float(it.c[k]), float(it.d[k]), float(self.se_a[k]), float(self.se_b[k]),
                 float(self.se_c[k]), float(self.se_d[k]), int(self.n_responses[k]),
                 "yes" if self.promotable[k] else "no", reasons[k])
                for k in range(len(it))]


def _specs_for(bank: Bank) -> list[ItemSpec]:
    return [ItemSpec(bank.item_ids[i], bank.models[i], bank.skills[i],
                     int(bank.n_categories[i])) for i in range(len(bank))]


def _check(responses: SparseResponses, operational: Bank, pretest: Sequence[ItemSpec]) -> None:
    n_op = len(operational)
    if responses.n_items != n_op + len(pretest):
        raise ValueError(f"responses cover {responses.n_items} items; expected the "
                         f"{n_op} operational items followed by the {len(pretest)} pretest "
                         f"items")
    ids = set(operational.item_ids)
    for spec in pretest:
        if spec.item_id in ids:
            raise ValueError(f"pretest item {spec.item_id!r} is also an operational item")
        if spec.skill not in set(operational.skills):
            raise ValueError(f"pretest item {spec.item_id!r}: skill {spec.skill!r} has no "
                             f"operational items to define its scale")
    op_rows = responses.item < n_op
    hi = operational.n_categories[responses.item[op_rows]]
    bad = responses.response[op_rows] >= hi
    if bad.any():
        j = int(np.flatnonzero(op_rows)[np.flatnonzero(bad)[0]])
        raise ValueError(f"row {j}: response {responses.response[j]} out of range for "
                         f"operational item {operational.item_ids[responses.item[j]]!r}")
    for k, spec in enumerate(pretest):
        rows = responses.item == n_op + k
        if spec.n_categories is not None and np.any(responses.response[rows]
                                                    >= spec.n_categories):
            j = int(np.flatnonzero(rows & (responses.response >= spec.n_categories))[0])
            raise ValueError(f"row {j}: response {responses.response[j]} out of range for "
                             f"pretest item {spec.item_id!r} ({spec.n_categories} categories)")


def calibrate_pretest(responses: SparseResponses, operational: Bank,
                      pretest: Sequence[ItemSpec], *, method: str = "mem",
                      priors: Priors | None = None, theta_method: str = "eap",
                      min_responses: int = MIN_RESPONSES, max_se_b: float = MAX_SE_B,
                      min_a: float = MIN_A, max_iter: int = 500) -> PretestCalibration:
    """Calibrate pretest items on the operational scale, operational items held fixed.

    Parameters
    ----------
    responses : long-format responses whose item index runs over the operational items
        (``0 … len(operational) − 1``, in bank order) followed by the pretest items (in
        ``pretest`` order). Operational and pretest responses of the same person share a row
        index.
    operational : the operational items with their published parameters (never changed).
    pretest : model, skill and category count of each pretest item.
    method : ``"mem"`` (fixed-parameter MML-EM, Kim 2006) or ``"method-a"`` (Stocking 1988).
    priors : item priors (default as `calibration.results.Priors`: Beta(6, 16) on c only).
    theta_method : Method A's θ̂ from the operational items: ``eap``, ``mle`` or ``wle``.
    min_responses, max_se_b, min_a : the promotion rule.
    max_iter : EM cycles (MEM).

    Returns
    -------
    PretestCalibration
    """
    method = method.lower().replace("_", "-")
    if method not in METHODS:
        raise ValueError(f"unknown online calibration method {method!r}; expected {METHODS}")
    pretest = list(pretest)
    if not pretest:
        raise ValueError("no pretest items to calibrate")
    _check(responses, operational, pretest)
    priors = priors or Priors()
    n_op = len(operational)
    counts = np.bincount(responses.item, minlength=responses.n_items)[n_op:]
    if method == "mem":
        # Rasch-family pretest items carry the slope of the skill's operational Rasch items
        family = [i for i, m in enumerate(operational.models) if m in RASCH_MODELS]
        common = float(operational.a[family[0]]) if family and all(
            s.model in RASCH_MODELS for s in pretest) else None
        cal = MMLCalibrator(pretest[0].model, priors=priors, max_iter=max_iter,
                            min_responses=1, common_a=common).fit(
            responses, _specs_for(operational) + pretest, anchors=operational)
        ids = [s.item_id for s in pretest]
        pos = [cal.items_.index(i) if i in cal.items_.item_ids else -1 for i in ids]
        missing = [i for i, p in zip(ids, pos, strict=True) if p < 0]
        if missing:
            raise ValueError(f"pretest items could not be calibrated (no variation in their "
                             f"responses?): {missing}")
        back = cal.items_.take([cal.items_.index(i) for i in operational.item_ids])
        same = (np.allclose(back.a, operational.a, rtol=1e-9, atol=1e-12)
                and np.allclose(np.nan_to_num(back.thresholds), np.nan_to_num(
                    operational.thresholds), rtol=1e-9, atol=1e-12)
                and np.allclose(back.c, operational.c) and np.allclose(back.d, operational.d))
        if not same:  # anchors must come back unchanged; fail loudly if they ever do not
            raise RuntimeError("operational items changed during the fixed-parameter "
                               "calibration")
        se = cal.se_
        p = np.asarray(pos)
        items = cal.items_.take(p)
        se_b = se.b[p].copy()
        th = se.thresholds[p]
        for k in range(len(items)):
            kk = int(items.n_categories[k]) - 1
            if items.model_code[k] != 0 and not np.isfinite(se_b[k]):
                # SE of the mean threshold; the calibrator reports no threshold covariances,
                # so they are taken as 0 here (an approximation, usually slightly low)
                se_b[k] = float(np.sqrt(np.sum(th[k, :kk] ** 2)) / kk)
        latent = tuple((f.skill, f.latent_mean, f.latent_sd) for f in cal.skills_)
        return PretestCalibration(items, se.a[p], se_b, se.c[p], se.d[p], th, counts, method,
                                  latent, min_responses, max_se_b, min_a)
    return _method_a(responses, operational, pretest, priors, theta_method, counts,
                     min_responses, max_se_b, min_a)


# ---------------------------------------------------------------- Method A


def _theta_by_skill(responses: SparseResponses, operational: Bank, theta_method: str
                    ) -> dict[str, NDArray[np.float64]]:
    """θ̂ per skill from the operational items only; NaN for persons with none of them."""
    estimators: dict[str, Callable[..., AbilityEstimates]] = {"eap": eap, "mle": mle,
                                                              "wle": wle}
    if theta_method not in estimators:
        raise ValueError(f"theta_method must be one of {tuple(estimators)}, got {theta_method!r}")
    out = {}
    n_op = len(operational)
    for skill in dict.fromkeys(operational.skills):
        members = operational.skill_indices(skill)
        keep = np.isin(responses.item, members) & (responses.item < n_op)
        sub = SparseResponses(responses.person[keep], np.searchsorted(members,
                                                                      responses.item[keep]),
                              responses.response[keep], responses.n_persons, members.size)
        est = estimators[theta_method](sub, operational.take(members))
        out[skill] = np.where(est.n_responses > 0, est.theta, np.nan)
    return out


def _natural_to_item(spec: ItemSpec, x: NDArray, common_a: float,
                     tau: NDArray | None = None) -> ItemParams:
    """Natural parameters → item. Equal-slope models carry ``common_a``; an RSM item is its
    location ``b`` plus the skill's rating-scale steps ``tau`` (``b_k = b + τ_k``)."""
    m = spec.model
    if m in ("1pl", "rasch"):
        return ItemParams(spec.item_id, m, common_a, x[0], skill=spec.skill)
    if m == "pcm":
        return ItemParams(spec.item_id, m, common_a, thresholds=tuple(x), skill=spec.skill)
    if m == "rsm":
        if tau is None:
            raise ValueError(f"pretest item {spec.item_id!r}: an RSM item needs the rating-scale "
                             f"steps of an operational RSM item with the same categories")
        return ItemParams(spec.item_id, m, common_a, thresholds=tuple(x[0] + tau),
                          skill=spec.skill)
    if m in ("2pl", "3pl", "4pl"):
        c = x[2] if m in ("3pl", "4pl") else 0.0
        d = x[3] if m == "4pl" else 1.0
        return ItemParams(spec.item_id, m, x[0], x[1], c, d, skill=spec.skill)
    return ItemParams(spec.item_id, m, x[0], thresholds=tuple(x[1:]), skill=spec.skill)


def _to_natural(spec: ItemSpec, z: NDArray) -> NDArray:
    """Internal (unconstrained) → natural parameters."""
    m = spec.model
    if m in ("1pl", "rasch", "pcm", "rsm"):
        return z.copy()
    if m in ("2pl", "3pl", "4pl"):
        out = [np.exp(z[0]), z[1]]
        if m in ("3pl", "4pl"):
            out.append(special.expit(z[2]))
        if m == "4pl":
            out.append(out[2] + (1 - out[2]) * special.expit(z[3]))
        return np.array(out)
    th = z[1:].copy()
    if m == "grm":
        th = np.concatenate([[z[1]], z[1] + np.cumsum(np.exp(z[2:]))])
    return np.concatenate([[np.exp(z[0])], th])


def _start(spec: ItemSpec, x: NDArray, K: int) -> NDArray:
    cum = np.clip([(x >= k).mean() for k in range(1, K)], 0.02, 0.98)
    b = -special.logit(cum)
    m = spec.model
    if m in ("1pl", "rasch"):
        return np.array([b[0]])
    if m == "pcm":
        return b.copy()
    if m == "rsm":
        return np.array([float(np.mean(b))])
    if m in ("2pl", "3pl", "4pl"):
        z = [0.0, b[0]]
        if m in ("3pl", "4pl"):
            z.append(special.logit(0.15))
        if m == "4pl":
            z.append(special.logit(0.9))
        return np.array(z)
    if m == "grm":
        b = np.sort(b)
        return np.concatenate([[0.0, b[0]], np.log(np.maximum(np.diff(b), 0.05))])
    return np.concatenate([[0.0], b])


def _log_prior(spec: ItemSpec, nat: NDArray, priors: Priors) -> float:
    lp = 0.0
    m = spec.model
    a = nat[0] if m not in ("1pl", *RASCH_MODELS) else None
    if priors.a is not None and a is not None:
        mu, sd = priors.a
        lp += -np.log(a) - (np.log(a) - mu) ** 2 / (2 * sd * sd)
    if priors.b is not None and m in ("1pl", "2pl", "3pl", "4pl", "rasch"):
        mu, sd = priors.b
        b = nat[0] if m in ("1pl", "rasch") else nat[1]
        lp += -((b - mu) ** 2) / (2 * sd * sd)
    if priors.c is not None and m in ("3pl", "4pl"):
        al, be = priors.c
        lp += (al - 1) * np.log(nat[2]) + (be - 1) * np.log1p(-nat[2])
    if priors.d is not None and m == "4pl":
        al, be = priors.d
        lp += (al - 1) * np.log(nat[3]) + (be - 1) * np.log1p(-nat[3])
    return float(lp)


def _item_nll(spec: ItemSpec, nat: NDArray, theta: NDArray, x: NDArray, common_a: float,
              priors: Priors, tau: NDArray | None = None) -> float:
    try:
        item = _natural_to_item(spec, nat, common_a, tau)
    except ValueError:
        return np.inf
    bank = Bank.from_params([item])
    p = paired_category_derivatives(theta, bank.rows(np.zeros(theta.size, np.int64)), 0)[0]
    px = np.clip(p[np.arange(theta.size), x], PROB_FLOOR, 1.0)
    return float(-np.sum(np.log(px)) - _log_prior(spec, nat, priors))


def _rating_steps(operational: Bank, skill_items: NDArray, n_categories: int) -> NDArray:
    """The rating-scale steps ``τ_k`` (centred) of the skill's operational RSM items with
    ``n_categories`` categories (they share them by the model's definition)."""
    for i in skill_items:
        if operational.models[i] == "rsm" and int(operational.n_categories[i]) == n_categories:
            th = operational.thresholds[i, : n_categories - 1]
            return th - th.mean()
    raise ValueError(f"an RSM pretest item needs an operational RSM item with {n_categories} "
                     f"categories in its skill, whose rating-scale steps it shares; none found "
                     f"(calibrate it as 'pcm', or by MEM)")


def _hessian(f, x: NDArray) -> NDArray:
    n = x.size
    h = HESSIAN_STEP * np.maximum(np.abs(x), 1.0)
    H = np.zeros((n, n))
    f0 = f(x)
    for i in range(n):
        for j in range(i, n):
            if i == j:
                e = np.zeros(n)
                e[i] = h[i]
                H[i, i] = (f(x + e) - 2 * f0 + f(x - e)) / (h[i] ** 2)
            else:
                ei, ej = np.zeros(n), np.zeros(n)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej)
                                     + f(x - ei - ej)) / (4 * h[i] * h[j])
    return H


def _method_a(responses: SparseResponses, operational: Bank, pretest: list[ItemSpec],
              priors: Priors, theta_method: str, counts: NDArray, min_responses: int,
              max_se_b: float, min_a: float) -> PretestCalibration:
    thetas = _theta_by_skill(responses, operational, theta_method)
    n_op = len(operational)
    counts = counts.copy()
    items: list[ItemParams] = []
    ses: list[NDArray] = []
    for k, spec in enumerate(pretest):
        rows = np.flatnonzero(responses.item == n_op + k)
        # a candidate without operational responses in the skill has no θ̂: left out
        rows = rows[np.isfinite(thetas[spec.skill][responses.person[rows]])]
        counts[k] = rows.size
        x = responses.response[rows]
        if rows.size == 0 or np.unique(x).size < 2:
            raise ValueError(f"pretest item {spec.item_id!r}: needs responses in at least two "
                             f"categories, got {rows.size} responses")
        K = spec.n_categories or int(x.max()) + 1
        if spec.model not in POLYTOMOUS_MODELS:
            K = 2
        spec = ItemSpec(spec.item_id, spec.model, spec.skill, K if K > 2 else spec.n_categories)
        theta = thetas[spec.skill][responses.person[rows]]
        sk = operational.skill_indices(spec.skill)
        family = ("1pl",) if spec.model == "1pl" else RASCH_MODELS
        ones = [i for i in sk if operational.models[i] in family]
        common_a = float(operational.a[ones[0]]) if ones else 1.0
        tau = _rating_steps(operational, sk, K) if spec.model == "rsm" else None

        def objective(z: NDArray, spec=spec, theta=theta, x=x, common_a=common_a,
                      tau=tau) -> float:
            return _item_nll(spec, _to_natural(spec, z), theta, x, common_a, priors, tau)

        res = optimize.minimize(objective, _start(spec, x, K), method="BFGS",
                                options={"gtol": 1e-6, "maxiter": 1000})
        if not np.isfinite(res.fun):
            raise ValueError(f"pretest item {spec.item_id!r}: Method A did not converge")
        nat = _to_natural(spec, res.x)
        items.append(_natural_to_item(spec, nat, common_a, tau))
        H = _hessian(lambda v, spec=spec, theta=theta, x=x, common_a=common_a, tau=tau:
                     _item_nll(spec, v, theta, x, common_a, priors, tau), nat)
        try:
            cov = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            logger.warning("pretest item %s: singular information, no standard errors",
                           spec.item_id)
            cov = np.full(H.shape, np.nan)
        diag = np.diag(cov)
        se = np.sqrt(np.where(diag > 0, diag, np.nan))
        if spec.model in ("grm", "gpcm", "pcm"):
            # SE of the mean threshold: the threshold block of the covariance, summed
            first = 0 if spec.model == "pcm" else 1
            kk = nat.size - first
            total = float(cov[first:, first:].sum())
            se = np.concatenate([se, [np.sqrt(total) / kk if total > 0 else np.nan]])
        ses.append(se)
    bank = Bank.from_params(items)
    n = len(bank)
    se_a, se_b, se_c, se_d = (np.full(n, np.nan) for _ in range(4))
    se_th = np.full((n, bank.max_categories - 1), np.nan)
    for k, (spec, se) in enumerate(zip(pretest, ses, strict=True)):
        m = spec.model
        kk = int(bank.n_categories[k]) - 1
        if m in ("1pl", "rasch"):
            se_b[k] = se[0]
        elif m == "pcm":
            se_th[k, :kk] = se[:kk]
            se_b[k] = se[-1]
        elif m == "rsm":  # b_k = b + τ_k with τ fixed: every step has b's error
            se_b[k] = se[0]
            se_th[k, :kk] = se[0]
        elif m in ("2pl", "3pl", "4pl"):
            se_a[k], se_b[k] = se[0], se[1]
            if m in ("3pl", "4pl"):
                se_c[k] = se[2]
            if m == "4pl":
                se_d[k] = se[3]
        else:
            se_a[k] = se[0]
            kk = int(bank.n_categories[k]) - 1
            se_th[k, :kk] = se[1: 1 + kk]
            se_b[k] = se[-1]
    latent = tuple((s, float(np.nanmean(t)), float(np.nanstd(t))) for s, t in thetas.items())
    return PretestCalibration(bank, se_a, se_b, se_c, se_d, se_th, counts, "method-a", latent,
                              min_responses, max_se_b, min_a)
