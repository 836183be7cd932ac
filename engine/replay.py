"""Replaying a stored session: re-score its answers and re-run its item selection.

`replay` starts a fresh session of the engine with the stored seed and records the stored answers
one by one through the engine's own step (`CatEngine.record`), so that

* every answer is re-scored from the prior with the given item parameters — θ̂ and SE after each
  scored answer, the final estimates, the classification decisions and the stop reason — and
  compared with what the session stored;
* before each answer, the item the engine serves given the same history is compared with the
  item that was served, together with its selection audit (rule, θ̂, criterion value, rank,
  exposure control, content-balancing reason).

When a served item differs (the bank changed between the session and the replay: an item
retired, other parameters published, observed exposure rates moved), the replay records the
divergence and continues with the item that was in fact served, so the arithmetic of the scoring
is still checked to the end. Nothing here depends on the database: the web service builds the
engine over the parameter versions the session used, a study builds it over its bank.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from engine.core import CatEngine
from engine.state import CatState, SelectionAudit, SkillEstimate

#: Tolerance of "reproduces the stored result exactly" (absolute, on θ and SE).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class ReplayStep:
    """One served item: what was stored and what the replay computed.

    ``theta``/``se`` are the replay's estimate of the item's skill after the answer (None for
    an unscored pretest item), ``stored_theta``/``stored_se`` the session's trajectory point;
    ``replayed_item``/``replayed_audit`` what the engine serves at this position given the
    same history (``item_reproduced``: the same item with the same audit)."""

    position: int
    item_id: str
    skill: str
    response: int
    scored: bool
    audit: SelectionAudit
    replayed_item: str | None
    replayed_audit: SelectionAudit | None
    theta: float | None
    se: float | None
    stored_theta: float | None
    stored_se: float | None

    @property
    def item_reproduced(self) -> bool:
        return self.replayed_item == self.item_id and self.replayed_audit is not None \
            and same_audit(self.audit, self.replayed_audit)

    @property
    def difference(self) -> float:
        """Largest absolute difference between the replayed and stored θ̂ and SE (0 when
        unscored)."""
        if self.theta is None or self.stored_theta is None or self.se is None \
                or self.stored_se is None:
            return 0.0 if self.theta is None and self.stored_theta is None else math.inf
        return max(abs(self.theta - self.stored_theta), abs(self.se - self.stored_se))


@dataclass(frozen=True)
class Replay:
    """The replay of one session (see the module docstring)."""

    steps: tuple[ReplayStep, ...]
    estimates: Mapping[str, SkillEstimate]
    decisions: Mapping[str, str]
    stop_reason: str | None
    stored_stop_reason: str | None
    state: CatState

    @property
    def items_reproduced(self) -> bool:
        return all(s.item_reproduced for s in self.steps)

    @property
    def first_divergence(self) -> int | None:
        """Position (1-based) of the first served item the replay did not reproduce."""
        return next((s.position for s in self.steps if not s.item_reproduced), None)

    @property
    def max_trajectory_difference(self) -> float:
        return max((s.difference for s in self.steps), default=0.0)


def same_audit(stored: SelectionAudit, replayed: SelectionAudit,
               tol: float = TOLERANCE) -> bool:
    """Equal audits (θ̂ and criterion to ``tol``); a stored audit without a balancing reason
    (recorded before the engine kept it) matches on the other fields."""
    return (stored.rule == replayed.rule and stored.exposure == replayed.exposure
            and stored.skill == replayed.skill and stored.rank == replayed.rank
            and stored.n_candidates == replayed.n_candidates
            and abs(stored.theta - replayed.theta) <= tol
            and _close(stored.criterion, replayed.criterion, tol)
            and (not stored.balance or stored.balance == replayed.balance))


def _close(a: float, b: float, tol: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def replay(engine: CatEngine, stored: CatState) -> Replay:
    """Replay ``stored`` on ``engine`` (see the module docstring). The engine must be built
    from the blueprint the session ran and a pool holding every item it served with the
    parameters that scored it."""
    state = engine.start(seed=stored.seed)
    position = {s: 0 for s in stored.trajectory}
    steps = []
    for n, event in enumerate(stored.events, start=1):
        replayed_item, replayed_audit = state.pending, state.pending_audit
        if state.stop_reason is not None or replayed_item != event.item_id:
            # the replay would have stopped or served another item: continue with the item
            # that was served (its stored audit), to keep re-scoring the stored answers
            state = dataclasses.replace(state, pending=event.item_id, pending_audit=event.audit,
                                        stop_reason=None)
        state = engine.record(state, event.item_id, event.response)
        theta = se = stored_theta = stored_se = None
        if event.scored:
            point = state.trajectory[event.skill][-1]
            theta, se = point.theta, point.se
            k = position.get(event.skill, 0)
            pts = stored.trajectory.get(event.skill, ())
            if k < len(pts):
                stored_theta, stored_se = pts[k].theta, pts[k].se
            position[event.skill] = k + 1
        steps.append(ReplayStep(n, event.item_id, event.skill, event.response, event.scored,
                                event.audit, replayed_item, replayed_audit, theta, se,
                                stored_theta, stored_se))
    return Replay(tuple(steps), engine.estimates(state), dict(state.decisions),
                  state.stop_reason, stored.stop_reason, state)
