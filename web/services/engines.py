"""CAT engines per assessment, rebuilt whenever the bank's current parameters change.

Building an engine loads the current bank and precomputes its grid tables, so engines are cached
per process, keyed by the assessment's blueprint and a fingerprint of the bank (latest parameter
version and latest item change). The cache is derived data: a fresh worker rebuilds the same
engine from the database, so no session state lives in memory.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import Blueprint, CatEngine, ItemPool
from item_bank import repository as repo
from item_bank.models import Assessment, Item, ItemParameterVersion

CACHE_SIZE = 32
_cache: OrderedDict[tuple, CatEngine] = OrderedDict()
_lock = threading.Lock()


def blueprint_of(assessment: Assessment) -> Blueprint:
    return Blueprint.from_dict(assessment.blueprint)


def bank_fingerprint(db: Session) -> tuple:
    latest_version = db.scalar(select(func.max(ItemParameterVersion.id)))
    latest_item = db.scalar(select(func.max(Item.updated_at)))
    n_items = db.scalar(select(func.count(Item.id)))
    return latest_version, str(latest_item), n_items


def build_engine(db: Session, blueprint: Blueprint) -> CatEngine:
    skills = [s.skill for s in blueprint.skills] or None
    loaded = repo.load_bank(db, skills=skills)
    pool = ItemPool(loaded.bank, status=[m.status for m in loaded.items],
                    enemy_groups=loaded.enemy_groups,
                    tags={m.external_id: m.tags for m in loaded.items})
    return CatEngine(pool, blueprint)


def engine_for(db: Session, assessment: Assessment) -> CatEngine:
    key = (assessment.id, json.dumps(assessment.blueprint, sort_keys=True), bank_fingerprint(db))
    with _lock:
        engine = _cache.get(key)
        if engine is not None:
            _cache.move_to_end(key)
            return engine
    engine = build_engine(db, blueprint_of(assessment))
    with _lock:
        _cache[key] = engine
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return engine
