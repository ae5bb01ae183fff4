"""Images operators attach to replies: read from a multipart upload with a size cap, accepted only
if the bytes are PNG, JPEG or GIF (the magic number decides, never the file name or the
browser's content type), stored in the database (`uploads` table) under a random name, so every
app process behind a load balancer serves and sends them.

A message refers to an upload by the path `<data_dir>/uploads/<name>` (the form messages always
had); nothing is kept on disk. `UploadSender` wraps a channel's sender: an upload it has to send
is written to a temporary file for that send only. Files left in the directory by older versions
are still sent, served and deleted by retention and erasure as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader
from sqlalchemy import delete

from dialogs.messages import Outbound
from storage.db import Database
from storage.models import UPLOAD_NAME, Upload

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
    (b"GIF87a", ".gif", "image/gif"),
    (b"GIF89a", ".gif", "image/gif"),
)
NAME = UPLOAD_NAME
CONTENT_TYPES = {ext: ctype for _, ext, ctype in MAGIC}


class UploadError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sniff(data: bytes) -> str | None:
    """The file extension for PNG/JPEG/GIF bytes, else None."""
    for magic, ext, _ in MAGIC:
        if data.startswith(magic):
            return ext
    return None


async def read_limited(part: BodyPartReader, limit: int) -> bytes:
    """The part's bytes; UploadError(413) as soon as it exceeds `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UploadError(f"the image is larger than {limit // (1024 * 1024)} MB", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def save_image(
    data: bytes, directory: Path, db: Database, *, filename: str | None = None
) -> Path:
    """Store the image in the database; the path messages refer to it by (no file is written)."""
    ext = sniff(data)
    if ext is None:
        raise UploadError("only PNG, JPEG or GIF images can be attached")
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadError("the image is larger than 5 MB", 413)
    name = f"{secrets.token_hex(16)}{ext}"
    async with db.transaction() as session:
        session.add(
            Upload(
                name=name,
                content_type=CONTENT_TYPES[ext],
                filename=(filename or "")[:255] or None,
                size=len(data),
                data=data,
            )
        )
    return directory / name


async def load(db: Database, name: str) -> Upload | None:
    """The stored upload called `name`, if any."""
    if not NAME.match(name):
        return None
    async with db.session() as session:
        return await session.get(Upload, name)


async def forget(db: Database, path: Path) -> None:
    """Delete the upload `save_image` returned `path` for (its reply was not sent)."""
    async with db.transaction() as session:
        await session.execute(delete(Upload).where(Upload.name == path.name))


def upload_name(image: str | None) -> str | None:
    """The upload name an outgoing image path ends in, if it is one (URLs and content files:
    None)."""
    if not image or image.startswith(("http://", "https://")):
        return None
    name = Path(image).name
    return name if NAME.match(name) else None


class UploadSender:
    """A channel's sender that can send uploads whatever process stored them: an upload not on
    this machine's disk is fetched from the database into a temporary file for the send."""

    def __init__(self, sender: Any, db: Database, directory: Path) -> None:
        self.sender = sender
        self.channel = sender.channel
        self.db = db
        self.directory = directory

    async def send(self, chat_id: str, message: Outbound, **options: Any) -> list[str]:
        name = upload_name(message.image)
        if name is None or await asyncio.to_thread(Path(str(message.image)).is_file):
            result: list[str] = await self.sender.send(chat_id, message, **options)
            return result
        upload = await load(self.db, name)
        if upload is None:  # erased, or never stored: the sender reports the missing file
            result = await self.sender.send(chat_id, message, **options)
            return result
        temp = self.directory / f".sending-{secrets.token_hex(8)}-{name}"

        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            temp.write_bytes(upload.data)

        await asyncio.to_thread(write)
        try:
            result = await self.sender.send(chat_id, replace(message, image=str(temp)), **options)
            return result
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(temp.unlink)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sender, name)
