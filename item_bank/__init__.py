"""Persistence: SQLAlchemy 2.0 models, migrations, repositories, import/export.
Never imports Flask or `web`."""
