"""Alembic migrations of the item bank (shipped as package data)."""
