"""The plot writers produce real PNG/SVG files and refuse unknown formats."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from calibration.fit import empirical_icc, information_curves
from calibration.plots import plot_empirical_icc, plot_information, plot_item_curves


def test_plots_write_png_and_svg(tmp_path) -> None:
    rng = np.random.default_rng(0)
    bank = irt.Bank.from_params([*irt.generate_items(10, "2pl", rng).params(),
                                 *irt.generate_items(3, "grm", rng, prefix="g").params()])
    x = irt.simulate_responses(rng.normal(size=500), bank, rng)
    data = irt.SparseResponses.from_dense(x)
    png = plot_empirical_icc(empirical_icc(data, bank, 2), tmp_path / "icc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_information(information_curves(bank), tmp_path / "info.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    grm = plot_item_curves(bank, "g0001", tmp_path / "g.svg")
    assert grm.stat().st_size > 1000
    with pytest.raises(ValueError, match="extension must be one of"):
        plot_item_curves(bank, "g0001", tmp_path / "g.gif")
