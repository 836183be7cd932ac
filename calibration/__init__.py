"""Fitting item parameters from responses (MML-EM), fit statistics, DIF, linking and drift.
Imports only `irt`.

The calibration core is `MMLCalibrator` (Bock–Aitkin marginal maximum likelihood, sparse end to
end, every model of `irt` and banks that mix them); its results are the typed values of
`calibration.results`. `CMLCalibrator` gives conditional ML (sample-free) estimates for the Rasch,
partial credit and rating scale models.
"""

from calibration.cml import CMLCalibrator
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
