"""Typed values a calibration returns: priors, item specs, standard errors, scores, issues."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from irt import MODELS, POLYTOMOUS_MODELS

#: Models `calibration.cml.CMLCalibrator` fits (defined here so that naming them, e.g. in the
#: CLI's choices, does not import the CML module).
CML_MODELS = ("rasch", "pcm", "rsm")


def _check_pair(name: str, pair: tuple[float, float] | None, positive_first: bool) -> None:
    if pair is None:
        return
    if len(pair) != 2 or not all(math.isfinite(float(v)) for v in pair):
        raise ValueError(f"prior {name!r} must be a pair of finite numbers, got {pair!r}")
    if float(pair[1]) <= 0 or (positive_first and float(pair[0]) <= 0):
        raise ValueError(f"prior {name!r} parameters must be > 0, got {pair!r}")


@dataclass(frozen=True)
class Priors:
    """Priors for Bayes modal (maximum a posteriori) item parameters.

    Parameters
    ----------
    a : ``(meanlog, sdlog)`` of a lognormal prior on every estimated discrimination, or None.
        ``log p(a) = −log a − (log a − μ)²/(2σ²)``; BILOG's classic choice is ``(0, 0.5)``.
    b : ``(mean, sd)`` of a normal prior on dichotomous difficulties, or None.
    c : ``(α, β)`` of a beta prior on the 3PL/4PL lower asymptote, or None. The default
        ``Beta(6, 16)`` is BILOG-MG's for four-option items, ``α = 20p + 1``,
        ``β = 20(1 − p) + 1`` with ``p = 1/4`` (Zimowski et al. 2003).
    d : ``(α, β)`` of a beta prior on the 4PL upper asymptote, or None (default ``Beta(18, 2)``,
        mode 0.94).

    The defaults are plain marginal ML for 1PL, 2PL, GRM and GPCM (Bock & Aitkin 1981), so
    estimates match R's mirt; only the asymptotes carry a prior (Mislevy 1986).
    """

    a: tuple[float, float] | None = None
    b: tuple[float, float] | None = None
    c: tuple[float, float] | None = (6.0, 16.0)
    d: tuple[float, float] | None = (18.0, 2.0)

    def __post_init__(self) -> None:
        _check_pair("a", self.a, positive_first=False)
        _check_pair("b", self.b, positive_first=False)
        _check_pair("c", self.c, positive_first=True)
        _check_pair("d", self.d, positive_first=True)


@dataclass(frozen=True)
class ItemSpec:
    """What to fit for one item: its model, skill and number of categories.

    ``n_categories`` is 2 for dichotomous models; for polytomous ones None means "the highest
    observed category + 1".
    """

    item_id: str
    model: str = "2pl"
    skill: str = "default"
    n_categories: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.item_id, str) or not self.item_id:
            raise ValueError(f"item id must be a non-empty string, got {self.item_id!r}")
        model = str(self.model).lower()
        if model not in MODELS:
            raise ValueError(f"item {self.item_id!r}: field 'model' must be one of {MODELS}, "
                             f"got {self.model!r}")
        object.__setattr__(self, "model", model)
        if not isinstance(self.skill, str) or not self.skill:
            raise ValueError(f"item {self.item_id!r}: field 'skill' must be a non-empty string")
        k = self.n_categories
        if model in POLYTOMOUS_MODELS:
            if k is not None and int(k) < 2:
                raise ValueError(f"item {self.item_id!r}: n_categories must be >= 2, got {k}")
        elif k not in (None, 2):
            raise ValueError(f"item {self.item_id!r}: model {model} has 2 categories, got {k}")


@dataclass(frozen=True, eq=False)
class ItemErrors:
    """Standard errors aligned with the calibrated `irt.Bank` (NaN where a value was not
    estimated: fixed by the model, an anchor, or a common-a constraint).

    ``a, b, c, d`` have shape ``(n_items,)``; ``thresholds`` ``(n_items, K_max − 1)`` holds the
    polytomous ``b_k``. ``method`` names how they were obtained.
    """

    a: NDArray[np.float64]
    b: NDArray[np.float64]
    c: NDArray[np.float64]
    d: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    method: str


@dataclass(frozen=True, eq=False)
class PersonScores:
    """EAP ability estimates from the final posterior, one column per skill.

    ``theta`` and ``se`` (posterior SD) have shape ``(n_persons, n_skills)``; a person with no
    response in a skill gets the latent prior (mean and SD) and ``n_responses`` 0.
    """

    person_ids: tuple[str, ...]
    skills: tuple[str, ...]
    theta: NDArray[np.float64]
    se: NDArray[np.float64]
    n_responses: NDArray[np.int64]


@dataclass(frozen=True)
class CalibrationIssue:
    """One problem met while calibrating (also logged as a warning).

    ``kind`` is one of ``excluded`` (no variation or no responses: not calibrated),
    ``few_responses``, ``unobserved_category``, ``bound`` (a slope held at its positive lower
    bound), ``diverging`` (a parameter ran to its bound or kept moving: the run is not
    converged), ``negative_slope`` (the item runs against the scale), ``unidentified`` (a skill
    with too few items to identify its slopes), ``not_converged``, ``loglik_decrease`` (the
    penalized EM objective fell), ``singular_information``.
    """

    kind: str
    skill: str
    item_id: str | None
    message: str


@dataclass(frozen=True)
class SkillFit:
    """Fit summary of one skill (each skill is its own θ scale).

    ``latent_nodes``/``latent_weights`` give the latent density used at the end (normal, or the
    empirical histogram), ``latent_mean``/``latent_sd`` its moments (for the Rasch family,
    ``latent_sd`` is the estimated σ of θ ~ N(0, σ²)). ``loglik_trace`` is the marginal
    log-likelihood at the start of every cycle (and at the end); ``objective_trace`` adds the
    log prior: that penalized objective is what EM increases, so only it is monotone when priors
    are in use (the log-likelihood alone may fall while the prior's penalty shrinks).
    """

    skill: str
    n_items: int
    n_persons: int
    n_responses: int
    n_parameters: int
    loglik: float
    aic: float
    bic: float
    n_iter: int
    n_em_steps: int
    converged: bool
    latent_mean: float
    latent_sd: float
    loglik_trace: tuple[float, ...]
    latent_nodes: tuple[float, ...] = ()
    latent_weights: tuple[float, ...] = ()
    objective_trace: tuple[float, ...] = ()


@dataclass(frozen=True)
class EMProgress:
    """Reported to a progress callback after every EM (or SQUAREM) cycle."""

    skill: str
    cycle: int
    max_iter: int
    loglik: float
    max_change: float
