"""Persistence: SQLAlchemy 2.0 models, Alembic migrations, repositories, import/export.

Never imports Flask or `web`. Repository functions (`item_bank.repository`) receive a
`sqlalchemy.orm.Session` and never commit; the caller owns the transaction, e.g.::

    from item_bank import db, repository
    engine = db.create_db_engine()     # DATABASE_URL, else instance/proficio.sqlite3
    db.check_schema(engine)            # refuses a schema that is behind: `proficio db upgrade`
    with db.transaction(engine) as session:
        loaded = repository.load_bank(session, skills=["databases"])

Modules: `db` (URLs, engines, migrations), `models` (ORM), `content` (item values, JSON and
content-CSV formats), `qti` (IMS QTI 2.1 packages), `transfer` (format by extension),
`repository` (services), `pool` (the engine's `ItemPool`), `security` (tokens, argon2 passwords),
`demo` (the demo database),
`shipped` (the Back-End Engineer bank shipped in ``item_bank/data``).
"""

from item_bank.content import (
    BankDocument,
    FormatError,
    ItemContent,
    Option,
    ParameterRecord,
    SkillInfo,
)
from item_bank.db import (
    SchemaError,
    check_schema,
    create_db_engine,
    database_url,
    transaction,
    upgrade,
)
from item_bank.repository import (
    CalibrationRunSpec,
    ExposureCounts,
    ImportReport,
    IssuedInvitation,
    ItemMeta,
    LoadedBank,
    ResponseExport,
    load_bank,
)

__all__ = [
    "BankDocument",
    "CalibrationRunSpec",
    "ExposureCounts",
    "FormatError",
    "ImportReport",
    "IssuedInvitation",
    "ItemContent",
    "ItemMeta",
    "LoadedBank",
    "Option",
    "ParameterRecord",
    "ResponseExport",
    "SchemaError",
    "SkillInfo",
    "check_schema",
    "create_db_engine",
    "database_url",
    "load_bank",
    "transaction",
    "upgrade",
]
