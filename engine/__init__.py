"""The computerized adaptive test: one step (scoring, content balancing, pretest slots, selection,
exposure control, stopping) vectorized over sessions, live sessions with JSON states, and
simulation studies. Imports only `irt`.

Live sessions::

    eng = make_engine(ItemPool(bank), Blueprint(se_target=0.3, max_items=40))
    state = eng.start(seed=42)
    while eng.finished(state) is None:
        item = eng.next_item(state)
        state = eng.record(state, item, answer_of(item))
    eng.estimates(state)

Every role of the blueprint is a registered strategy that round-trips through JSON
(`REGISTRY`, `strategy_from_dict`): start rule, scorer (``eap``, ``map``), selector (``mfi``,
``kl``, ``mpwi``, ``bmatch``, ``astrat``, ``d_optimal``, ``c_optimal``, ``shadow``), exposure
control, content balancer (``kingsbury_zara``, ``open``, ``minimums_first``), pretest policy
(``positions``) and stopping rules (``se``, ``classification``, ``composite``). Simulation
studies: `engine.simulation.simulate` (the same step with one row per simulee),
`simulate_fixed_form`, `tune_sympson_hetter`.
"""

from engine._rng import derive_seed
from engine.blueprint import Blueprint, SkillSpec
from engine.core import CatEngine, make_engine
from engine.errors import (
    AlreadyAnsweredError,
    ConfigurationError,
    EngineError,
    NotServedError,
    ResponseOutOfRangeError,
    SessionFinishedError,
    UnknownItemError,
)
from engine.pool import ITEM_STATUSES, ItemPool
from engine.rules import (
    Classification,
    CompositeSE,
    ContentBalancer,
    EAPScorer,
    FixedPositions,
    KingsburyZara,
    MAPScorer,
    MinimumsFirst,
    OpenSkills,
    PretestPolicy,
    Scorer,
    SETarget,
    Stopper,
)
from engine.shadow import ShadowTest
from engine.state import (
    STOP_REASONS,
    CatState,
    ItemEvent,
    SelectionAudit,
    SkillEstimate,
    TrajectoryPoint,
)
from engine.strategies import (
    REGISTRY,
    AStratified,
    BMatching,
    COptimal,
    DOptimal,
    ExposureCap,
    FixedStart,
    KLInfo,
    MaxInfo,
    NoExposureControl,
    PosteriorWeightedInfo,
    PriorStart,
    Randomesque,
    Selector,
    SympsonHetter,
    strategy_from_dict,
)

__all__ = [
    "ITEM_STATUSES", "REGISTRY", "STOP_REASONS", "AStratified", "AlreadyAnsweredError",
    "BMatching", "Blueprint", "COptimal", "CatEngine", "CatState", "Classification", "CompositeSE",
    "ConfigurationError", "ContentBalancer", "DOptimal", "EAPScorer", "EngineError",
    "ExposureCap", "FixedPositions", "FixedStart", "ItemEvent", "ItemPool", "KLInfo",
    "KingsburyZara", "MAPScorer", "MaxInfo", "MinimumsFirst", "NoExposureControl", "NotServedError",
    "OpenSkills", "PosteriorWeightedInfo", "PretestPolicy", "PriorStart", "Randomesque",
    "ResponseOutOfRangeError", "SETarget", "Scorer", "SelectionAudit", "Selector",
    "SessionFinishedError", "ShadowTest", "SkillEstimate", "SkillSpec", "Stopper",
    "SympsonHetter", "TrajectoryPoint", "UnknownItemError", "derive_seed", "make_engine",
    "strategy_from_dict",
]
