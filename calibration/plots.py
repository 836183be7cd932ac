"""Plots of the recalibration loop (matplotlib, no global pyplot state, Agg canvas).

* `plot_empirical_icc`: observed mean score by θ group (with ±2 binomial/score SE bars) against
  the model's expected score for exactly those persons and the model curve ``E[X | θ]``;
* `plot_item_curves`: model category response curves of one item;
* `plot_information`: test information and conditional SE ``1/√I(θ)`` per skill.

The format follows the file extension (``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.fit import EmpiricalICC, InformationCurves
from irt import Bank, category_probabilities

FORMATS = (".png", ".svg", ".pdf")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"plot file {str(path)!r}: extension must be one of {FORMATS}")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_empirical_icc(icc: EmpiricalICC, path: str | Path, max_score: int = 1) -> Path:
    """Empirical vs model ICC of one item (see `calibration.fit.empirical_icc`)."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    ax.plot(icc.theta, icc.model, color="0.3", lw=1.5, label="model E[X | θ]")
    # ±2 SE of a group mean under the model's expectation (binomial for 0/1 items)
    spread = np.clip(icc.expected * (max_score - icc.expected), 0, None) / np.maximum(icc.n, 1)
    ax.errorbar(icc.theta_group, icc.observed, yerr=2 * np.sqrt(spread), fmt="o",
                color="tab:blue", capsize=3, label="observed (±2 SE)")
    ax.plot(icc.theta_group, icc.expected, "x", color="tab:red", label="model, same persons")
    ax.set_xlabel("θ (rest-posterior mean of the group)")
    ax.set_ylabel("mean score")
    ax.set_title(f"Item {icc.item_id}: empirical vs model")
    ax.set_ylim(-0.02, max_score + 0.02)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_item_curves(bank: Bank, item_id: str, path: str | Path) -> Path:
    """Category response curves ``P_k(θ)`` of one item."""
    i = bank.index(item_id)
    theta = np.linspace(-4, 4, 161)
    probs = category_probabilities(theta, bank.take([i]))[:, 0, :]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot()
    for k in range(int(bank.n_categories[i])):
        ax.plot(theta, probs[:, k], label=f"category {k}")
    ax.set_xlabel("θ")
    ax.set_ylabel("P(X = k | θ)")
    ax.set_title(f"Item {item_id} ({bank.models[i]})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_information(curves: InformationCurves, path: str | Path) -> Path:
    """Test information (left axis) and conditional SE (right axis) for every skill."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    se_ax = ax.twinx()
    for s, skill in enumerate(curves.skills):
        line, = ax.plot(curves.theta, curves.information[:, s],
                        label=f"{skill} (ρ = {curves.reliability[s]:.2f})")
        se_ax.plot(curves.theta, curves.se[:, s], ls="--", color=line.get_color())
    ax.set_xlabel("θ")
    ax.set_ylabel("test information (solid)")
    se_ax.set_ylabel("conditional SE (dashed)")
    se_ax.set_ylim(0, min(2.0, float(np.nanmax(curves.se)) * 1.05))
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Information and conditional SE by skill")
    return _save(fig, path)
