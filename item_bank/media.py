"""Item media (images a stem shows): checks and the storage interface (issue 22).

An image is accepted when it is at most `MAX_MEDIA_BYTES` bytes and its *content* (not its
name) is one of `ALLOWED_TYPES`: PNG, JPEG, GIF or WebP, recognised by their signatures. SVG is
refused — it is a document that can carry scripts and external references, and serving it
safely needs a sanitizer Proficio does not ship; convert it to PNG. Every image needs alt text
(what it shows, read by screen readers); an item whose image has none is refused naming the
item.

Storage goes through `MediaStorage` (``put``/``get``/``delete`` by row): `DatabaseStorage`
keeps the bytes in ``item_media.data``; an object-storage backend would keep them under
``item_media.storage_key`` instead, with nothing else changing. The app serves them itself
(``img-src 'self'``), with their checked content type and ``X-Content-Type-Options:
nosniff``.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from item_bank.content import MediaFile
from item_bank.models import Item, ItemMedia

__all__ = ["ALLOWED_TYPES", "MAX_MEDIA_BYTES", "DatabaseStorage", "MediaError", "MediaFile",
           "MediaStorage", "content_type", "find", "read", "store"]

MAX_MEDIA_BYTES = 1_000_000
#: Most images one item may carry.
MAX_MEDIA_PER_ITEM = 10
#: Content type → file signatures (the first bytes of the file).
ALLOWED_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # + "WEBP" at offset 8, checked below
}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
              "image/webp": ".webp"}


class MediaError(ValueError):
    """A refused media file; the message names the file and says why."""


def content_type(name: str, data: bytes) -> str:
    """The checked content type of ``data`` (named ``name`` in messages); `MediaError` when it
    is too large, empty, SVG or not one of `ALLOWED_TYPES`."""
    if len(data) > MAX_MEDIA_BYTES:
        raise MediaError(f"{name}: {len(data)} bytes; an image may have at most "
                         f"{MAX_MEDIA_BYTES} bytes")
    if not data:
        raise MediaError(f"{name}: the file is empty")
    head = data[:512].lstrip().lower()
    if name.lower().endswith((".svg", ".svgz")) or head.startswith((b"<?xml", b"<svg")):
        raise MediaError(f"{name}: SVG images are refused (they can carry scripts); convert "
                         f"it to PNG")
    for ctype, signatures in ALLOWED_TYPES.items():
        if data.startswith(signatures) and (ctype != "image/webp" or data[8:12] == b"WEBP"):
            return ctype
    raise MediaError(f"{name}: not an image of an allowed type (PNG, JPEG, GIF or WebP)")


class MediaStorage(Protocol):
    """Where the bytes of an `ItemMedia` row live."""

    def put(self, row: ItemMedia, data: bytes) -> None: ...
    def get(self, row: ItemMedia) -> bytes: ...


class DatabaseStorage:
    """Bytes in the ``item_media.data`` column (the default)."""

    def put(self, row: ItemMedia, data: bytes) -> None:
        row.data, row.storage_key = data, None

    def get(self, row: ItemMedia) -> bytes:
        return bytes(row.data or b"")


STORAGE: MediaStorage = DatabaseStorage()


def store(session: Session, item: Item, name: str, alt: str, data: bytes,
          storage: MediaStorage | None = None) -> ItemMedia:
    """Check and store (or replace) the image ``name`` of ``item``."""
    if not alt.strip():
        raise MediaError(f"item {item.external_id!r}: image {name!r}: alt text is required")
    ctype = content_type(f"item {item.external_id!r}: image {name!r}", data)
    row = session.scalar(select(ItemMedia).where(ItemMedia.item_id == item.id,
                                                 ItemMedia.name == name))
    if row is None:
        count = len(session.scalars(select(ItemMedia.id)
                                    .where(ItemMedia.item_id == item.id)).all())
        if count >= MAX_MEDIA_PER_ITEM:
            raise MediaError(f"item {item.external_id!r}: at most {MAX_MEDIA_PER_ITEM} images")
        row = ItemMedia(item_id=item.id, name=name)
        session.add(row)
    row.content_type, row.alt, row.size_bytes = ctype, alt.strip(), len(data)
    row.sha256 = hashlib.sha256(data).hexdigest()
    (storage or STORAGE).put(row, data)
    session.flush()
    return row


def item_media(session: Session, item_pk: int) -> list[ItemMedia]:
    return list(session.scalars(select(ItemMedia).where(ItemMedia.item_id == item_pk)
                                .order_by(ItemMedia.id)))


def find(session: Session, bank_id: int, external_id: str, name: str) -> ItemMedia | None:
    """The image ``name`` of the item ``external_id`` of bank ``bank_id`` (None: no such)."""
    return session.scalar(select(ItemMedia).join(Item, ItemMedia.item_id == Item.id)
                          .where(Item.bank_id == bank_id, Item.external_id == external_id,
                                 ItemMedia.name == name))


def read(row: ItemMedia, storage: MediaStorage | None = None) -> bytes:
    return (storage or STORAGE).get(row)
