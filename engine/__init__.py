"""The computerized adaptive test: session state, selection, exposure control, content
balancing, stopping, per-skill scoring and simulation studies. Imports only `irt`.

Live sessions::

    eng = CatEngine(ItemPool(bank), Blueprint(se_target=0.3, max_items=40))
    state = eng.start(seed=42)
    while eng.finished(state) is None:
        item = eng.next_item(state)
        state = eng.record(state, item, answer_of(item))
    eng.estimates(state)

Simulation studies: `simulate` (vectorized across simulees, identical to running `CatEngine`
session by session), `simulate_fixed_form`, `tune_sympson_hetter`.

Correlated skills and shadow tests (issue 9): `make_engine(pool, blueprint)` returns
`McatEngine` when the blueprint has ``correlations``, `ShadowCatEngine` for the ``shadow``
selector, else `CatEngine` — all with the same session API; `simulate_sessions` runs any of them.
"""

from engine._rng import derive_seed
from engine.blueprint import Blueprint, Classification, SkillSpec
from engine.errors import (
    AlreadyAnsweredError,
    ConfigurationError,
    EngineError,
    NotServedError,
    ResponseOutOfRangeError,
    SessionFinishedError,
    UnknownItemError,
)
from engine.mcat import McatEngine, make_engine, simulate_sessions
from engine.pool import ITEM_STATUSES, ItemPool
from engine.session import (
    STOP_REASONS,
    CatEngine,
    CatState,
    ItemEvent,
    SelectionAudit,
    SkillEstimate,
    TrajectoryPoint,
)
from engine.shadow import ShadowCatEngine, ShadowTest
from engine.strategies import (
    REGISTRY,
    AStratified,
    BMatching,
    ExposureCap,
    FixedStart,
    KLInfo,
    MaxInfo,
    NoExposureControl,
    PosteriorWeightedInfo,
    PriorStart,
    Randomesque,
    SympsonHetter,
    strategy_from_dict,
)

__all__ = [
    "ITEM_STATUSES",
    "REGISTRY",
    "STOP_REASONS",
    "AStratified",
    "AlreadyAnsweredError",
    "BMatching",
    "Blueprint",
    "CatEngine",
    "CatState",
    "Classification",
    "ConfigurationError",
    "EngineError",
    "ExposureCap",
    "FixedStart",
    "ItemEvent",
    "ItemPool",
    "KLInfo",
    "MaxInfo",
    "McatEngine",
    "NoExposureControl",
    "NotServedError",
    "PosteriorWeightedInfo",
    "PriorStart",
    "Randomesque",
    "ResponseOutOfRangeError",
    "SelectionAudit",
    "SessionFinishedError",
    "ShadowCatEngine",
    "ShadowTest",
    "SkillEstimate",
    "SkillSpec",
    "SympsonHetter",
    "TrajectoryPoint",
    "UnknownItemError",
    "derive_seed",
    "make_engine",
    "simulate_sessions",
    "strategy_from_dict",
]
