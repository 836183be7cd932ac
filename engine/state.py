"""The state of a CAT session: immutable, JSON-serializable plain values.

`CatState` holds the served items with their audit records, the responses, per skill the
trajectory of θ̂ and SE after every response, classification decisions, the pending item and the
stop reason. Item parameters are never embedded: items are referred to by id and the engine's
pool is passed in. The engine's working arrays are cached on a state (never serialized) and
rebuilt from the events when a state is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.errors import EngineError

#: Stop reasons recorded in `CatState.stop_reason`.
STOP_REASONS = ("se_target", "classified", "max_items", "bank_exhausted", "composite_se")
STATE_VERSION = 1


_DUMPS = json.JSONEncoder().encode


def _event_json(e: ItemEvent) -> str:
    return _DUMPS({"item_id": e.item_id, "skill": e.skill, "response": e.response,
                   "scored": e.scored, "audit": e.audit.to_dict()})


def _json_fragments(state: CatState, previous: CatState | None
                    ) -> tuple[list[str], dict[str, list[str]]]:
    """The encoded events and (per skill) trajectory points of ``state``, reusing those kept
    on ``previous`` for the leading items the two share (the same objects)."""
    kept = None if previous is None else previous._encoded
    events: list[str] = []
    points: dict[str, list[str]] = {}
    if kept is not None:
        old_events, old_frags, old_traj, old_points = kept
        n = len(old_events)
        if len(state.events) >= n and (n == 0 or state.events[n - 1] is old_events[n - 1]) \
                and state.events[:n] == old_events:
            events = old_frags[:]
        for s, pts in state.trajectory.items():
            old = old_traj.get(s, ())
            m = len(old)
            if len(pts) >= m and pts[:m] == old and s in old_points:
                points[s] = old_points[s][:]
    for e in state.events[len(events):]:
        events.append(_event_json(e))
    for s, pts in state.trajectory.items():
        frags = points.setdefault(s, [])
        for p in pts[len(frags):]:
            frags.append(f"[{_DUMPS(p.theta)}, {_DUMPS(p.se)}]")
    return events, points


# --------------------------------------------------------------------------- state values

@dataclass(frozen=True, slots=True)
class SelectionAudit:
    """Why an item was served: the rule, θ̂ at the time, the item's criterion value and its rank
    among ``n_candidates`` available items (1 = best; exposure control may pick a lower rank),
    and ``balance``, why its skill was the one served (the content balancer's reason; "" in
    states recorded before it was kept)."""

    rule: str
    exposure: str
    skill: str
    theta: float
    criterion: float
    rank: int
    n_candidates: int
    balance: str = ""

    def to_dict(self) -> dict[str, Any]:
        # what dataclasses.asdict gives, without its recursive deep copy (the answer hot path
        # serializes every event of the session)
        return {"rule": self.rule, "exposure": self.exposure, "skill": self.skill,
                "theta": self.theta, "criterion": self.criterion, "rank": self.rank,
                "n_candidates": self.n_candidates, "balance": self.balance}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelectionAudit:
        return cls(str(d["rule"]), str(d["exposure"]), str(d["skill"]), float(d["theta"]),
                   float(d["criterion"]), int(d["rank"]), int(d["n_candidates"]),
                   str(d.get("balance", "")))


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """One answered item: ``scored`` is False for unscored pretest items."""

    item_id: str
    skill: str
    response: int
    scored: bool
    audit: SelectionAudit


@dataclass(frozen=True, slots=True)
class TrajectoryPoint:
    """EAP θ and posterior SD of a skill after one of its responses."""

    theta: float
    se: float


@dataclass(frozen=True, slots=True)
class SkillEstimate:
    """A skill's score: θ̂, its standard error, the number of scored items, the method, and the
    classification (``'pass'``/``'fail'``; ``decided`` False when the rule had not decided and
    the decision is θ̂ against the cut)."""

    skill: str
    theta: float
    se: float
    n_items: int
    method: str
    decision: str | None = None
    decided: bool = False


@dataclass(frozen=True, eq=False)
class CatState:
    """The state of one session. Build with `CatEngine.start`; advance with `CatEngine.record`.

    Every field is a plain value; `to_json` / `from_json` round-trip it exactly (the engine
    recomputes its working arrays from the events on first use).
    """

    seed: int
    events: tuple[ItemEvent, ...]
    pending: str | None
    pending_audit: SelectionAudit | None
    trajectory: Mapping[str, tuple[TrajectoryPoint, ...]]
    decisions: Mapping[str, str]
    stop_reason: str | None
    _memo: Any = field(default=None, repr=False)
    #: JSON fragments of the events and trajectory points (`to_json_after`), kept so the next
    #: state encodes only what it adds; never serialized, not part of the value.
    _encoded: Any = field(default=None, repr=False)

    def working(self, owner: object) -> Any:
        """The working arrays ``owner`` (an engine) cached on this state, or None."""
        cached = self._memo
        return cached[1] if cached is not None and cached[0] is owner else None

    def keep_working(self, owner: object, value: Any) -> None:
        """Cache ``owner``'s working arrays on this state (not part of its value)."""
        object.__setattr__(self, "_memo", (owner, value))

    def drop_working(self) -> None:
        """Forget the cached working arrays (an engine takes them over for the next state)."""
        object.__setattr__(self, "_memo", None)

    @property
    def n_items(self) -> int:
        """Number of scored items answered."""
        return sum(1 for e in self.events if e.scored)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def audit(self) -> tuple[SelectionAudit, ...]:
        """The audit record of every served item, in order (the pending one last)."""
        out = tuple(e.audit for e in self.events)
        return out + ((self.pending_audit,) if self.pending_audit is not None else ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "events": [{"item_id": e.item_id, "skill": e.skill, "response": e.response,
                        "scored": e.scored, "audit": e.audit.to_dict()} for e in self.events],
            "pending": self.pending,
            "pending_audit": None if self.pending_audit is None
            else self.pending_audit.to_dict(),
            "trajectory": {s: [[p.theta, p.se] for p in pts]
                           for s, pts in self.trajectory.items()},
            "decisions": dict(self.decisions),
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CatState:
        try:
            if d.get("version") != STATE_VERSION:
                raise EngineError(f"session state: unsupported version {d.get('version')!r}")
            events = tuple(
                ItemEvent(str(e["item_id"]), str(e["skill"]), int(e["response"]),
                          bool(e["scored"]), SelectionAudit.from_dict(e["audit"]))
                for e in d["events"])
            stop = d["stop_reason"]
            if stop is not None and stop not in STOP_REASONS:
                raise EngineError(f"session state: unknown stop_reason {stop!r}")
            pa = d["pending_audit"]
            return cls(
                seed=int(d["seed"]), events=events,
                pending=None if d["pending"] is None else str(d["pending"]),
                pending_audit=None if pa is None else SelectionAudit.from_dict(pa),
                trajectory=MappingProxyType({
                    str(s): tuple(TrajectoryPoint(float(t), float(se)) for t, se in pts)
                    for s, pts in d["trajectory"].items()}),
                decisions=MappingProxyType({str(k): str(v) for k, v in d["decisions"].items()}),
                stop_reason=stop,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"session state: malformed field ({type(exc).__name__}: {exc})"
                              ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_json_after(self, previous: CatState | None = None) -> str:
        """``json.dumps(self.to_dict())`` (the same value, the same text), encoding only what
        this state adds to ``previous``: the encoded events and trajectory points of
        ``previous`` (kept on it by its own `to_json_after`) are reused when they are the
        first ones of this state. The answer hot path saves the state after every answer;
        this keeps its cost from growing with the number of answers."""
        events, points = _json_fragments(self, previous)
        object.__setattr__(self, "_encoded", (self.events, events, self.trajectory, points))
        dumps = _DUMPS
        traj = ", ".join(f"{dumps(s)}: [{', '.join(points[s])}]" for s in self.trajectory)
        pa = self.pending_audit
        return (f'{{"version": {STATE_VERSION}, "seed": {dumps(self.seed)}, '
                f'"events": [{", ".join(events)}], "pending": {dumps(self.pending)}, '
                f'"pending_audit": {dumps(None if pa is None else pa.to_dict())}, '
                f'"trajectory": {{{traj}}}, "decisions": {dumps(dict(self.decisions))}, '
                f'"stop_reason": {dumps(self.stop_reason)}}}')

    @classmethod
    def from_json(cls, text: str) -> CatState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EngineError(f"session state JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EngineError("session state JSON must be an object")
        return cls.from_dict(data)
