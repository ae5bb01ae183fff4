"""Images operators attach to replies: read from a multipart upload with a size cap, accepted only
if the bytes are PNG, JPEG or GIF (the magic number decides, never the file name or the
browser's content type), saved under `<data_dir>/uploads` with a random name."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

from aiohttp import BodyPartReader

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
    (b"GIF87a", ".gif", "image/gif"),
    (b"GIF89a", ".gif", "image/gif"),
)
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|gif)$")
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


async def save_image(data: bytes, directory: Path) -> Path:
    ext = sniff(data)
    if ext is None:
        raise UploadError("only PNG, JPEG or GIF images can be attached")
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadError("the image is larger than 5 MB", 413)
    path = directory / f"{secrets.token_hex(16)}{ext}"

    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    await asyncio.to_thread(write)
    return path.resolve()
