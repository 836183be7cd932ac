"""Fitting item parameters from responses (MML-EM), fit statistics, DIF, linking and drift.
Imports only `irt`.

The calibration core is `MMLCalibrator` (Bock–Aitkin marginal maximum likelihood, sparse end to
end, every model of `irt` and banks that mix them); its results are the typed values of
`calibration.results`. `CMLCalibrator` gives conditional ML (sample-free) estimates for the Rasch,
partial credit and rating scale models.
"""

from typing import TYPE_CHECKING

from calibration.mml import MMLCalibrator
from calibration.results import (
    CalibrationIssue,
    EMProgress,
    ItemErrors,
    ItemSpec,
    PersonScores,
    Priors,
    SkillFit,
)

if TYPE_CHECKING:
    from calibration.cml import CMLCalibrator


def __getattr__(name: str) -> object:
    """`CMLCalibrator` is imported on first use (``proficio calibrate`` with MML skips it)."""
    if name == "CMLCalibrator":
        from calibration.cml import CMLCalibrator

        return CMLCalibrator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CMLCalibrator",
    "CalibrationIssue",
    "EMProgress",
    "ItemErrors",
    "ItemSpec",
    "MMLCalibrator",
    "PersonScores",
    "Priors",
    "SkillFit",
]
