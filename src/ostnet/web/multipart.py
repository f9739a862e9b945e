"""A small streaming ``multipart/form-data`` parser (RFC 7578) for the web demo's uploads.

The standard library has no form parser any more (``cgi`` is gone in Python 3.13), so this one reads the
request body in chunks and writes every file part straight to disk: memory stays bounded whatever the upload
size. Text fields are kept in memory (at most ``max_field_bytes`` each). Part headers are parsed with
``email.parser.BytesHeaderParser``, which handles quoting and RFC 2231 ``filename*=`` names.

Wire format: the body is ``--B CRLF headers CRLF CRLF data CRLF --B CRLF ... data CRLF --B--``. Seen as
``CRLF --B`` delimiters (with a CRLF put in front of the body), the data of a part is everything between the
blank line after its headers and the next delimiter, byte for byte, CRLFs included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path, PureWindowsPath
from typing import BinaryIO

from ostnet.errors import OstnetError

CHUNK = 1 << 16
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 64
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")  # RFC 2046 bchars


@dataclass(frozen=True)
class FormFile:
    """An uploaded file: the form field ``name``, the browser's ``filename`` (base name only), its
    ``content_type``, where it was written (``path``) and its ``size`` in bytes."""

    name: str
    filename: str
    content_type: str
    path: Path
    size: int


@dataclass
class FormData:
    """The parsed form: text ``fields`` and ``files`` by field name (the last part of a name wins)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FormFile] = field(default_factory=dict)

    def text(self, name: str, default: str | None = None) -> str:
        """The text field ``name``; ``OstnetError`` when it is missing and no default is given."""
        if name in self.fields:
            return self.fields[name]
        if default is None:
            raise OstnetError(f"form: missing field {name!r}")
        return default

    def flag(self, name: str) -> bool:
        """A checkbox: present (any value but ``""``, ``0``, ``off``, ``false``) means ticked."""
        return self.fields.get(name, "").strip().lower() not in ("", "0", "off", "false", "no")

    def file(self, name: str, what: str) -> FormFile:
        """The uploaded file ``name``; ``OstnetError`` naming ``what`` when none (or an empty one) was sent."""
        upload = self.files.get(name)
        if upload is None or (upload.size == 0 and not upload.filename):
            raise OstnetError(f"form: no {what} was uploaded (field {name!r})")
        if upload.size == 0:
            raise OstnetError(f"{what} '{upload.filename}': the file is empty")
        return upload


def boundary_from(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type header; ``OstnetError`` for anything else."""
    message = Message()
    message["Content-Type"] = content_type or ""
    if message.get_content_type() != "multipart/form-data":
        raise OstnetError(f"request: expected multipart/form-data, got {content_type or 'no Content-Type'!r}")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not _BOUNDARY.match(boundary):
        raise OstnetError("request: multipart/form-data without a valid boundary")
    return boundary.encode("ascii")


class _Reader:
    """Exactly ``length`` bytes of ``stream``, chunk by chunk, into a buffer that starts with CRLF."""

    def __init__(self, stream: BinaryIO, length: int, chunk_size: int) -> None:
        self.stream, self.remaining, self.chunk_size = stream, length, chunk_size
        self.buffer = bytearray(b"\r\n")

    def fill(self) -> bool:
        """Append one chunk; False at the end of the body."""
        if self.remaining <= 0:
            return False
        data = self.stream.read(min(self.chunk_size, self.remaining))
        if not data:
            raise OstnetError("upload: the connection closed before the form data was complete")
        self.remaining -= len(data)
        self.buffer += data
        return True

    def need(self, count: int) -> bool:
        """Make the buffer at least ``count`` bytes long; False if the body ends first."""
        while len(self.buffer) < count:
            if not self.fill():
                return False
        return True

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data


def _copy_until(reader: _Reader, delimiter: bytes, sink) -> None:
    """Pass the bytes before the next ``delimiter`` to ``sink`` and drop the delimiter itself."""
    keep = len(delimiter) - 1
    while True:
        index = reader.buffer.find(delimiter)
        if index >= 0:
            sink(reader.take(index))
            reader.take(len(delimiter))
            return
        if len(reader.buffer) > keep:  # all but a possible delimiter prefix at the end
            sink(reader.take(len(reader.buffer) - keep))
        if not reader.fill():
            raise OstnetError("upload: the form data ended early (the closing boundary is missing)")


def _read_headers(reader: _Reader) -> Message:
    """The headers after a delimiter line, up to the blank line."""
    while (end := reader.buffer.find(b"\r\n\r\n")) < 0:
        if len(reader.buffer) > MAX_HEADER_BYTES:
            raise OstnetError("upload: a form part has too long a header")
        if not reader.fill():
            raise OstnetError("upload: the form data ended inside a part header")
    raw = reader.take(end + 4)
    return BytesHeaderParser().parsebytes(raw.lstrip(b"\r\n"))


def _after_delimiter(reader: _Reader) -> bool:
    """After ``--B``: True if another part follows (CRLF), False at the closing ``--``."""
    if not reader.need(2):
        raise OstnetError("upload: the form data ended early (the closing boundary is missing)")
    if reader.buffer[:2] == b"--":
        return False
    while reader.need(1) and reader.buffer[:1] in (b" ", b"\t"):  # transport padding (RFC 2046)
        reader.take(1)
    if not reader.need(2) or reader.take(2) != b"\r\n":
        raise OstnetError("upload: malformed multipart data (no line break after a boundary)")
    return True


def _safe_suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _read_part(reader: _Reader, delimiter: bytes, folder: Path, index: int, max_field_bytes: int, form: FormData):
    headers = _read_headers(reader)
    name = headers.get_param("name", header="content-disposition")
    if headers.get_content_disposition() != "form-data" or not isinstance(name, str):
        raise OstnetError("upload: a form part has no Content-Disposition: form-data; name=...")
    filename = headers.get_filename()
    if filename is None:  # a text field
        data = bytearray()

        def keep(chunk: bytes) -> None:
            if len(data) + len(chunk) > max_field_bytes:
                raise OstnetError(f"form: field {name!r} is longer than {max_field_bytes} bytes")
            data.extend(chunk)

        _copy_until(reader, delimiter, keep)
        form.fields[name] = data.decode("utf-8", errors="replace")
        return
    base = PureWindowsPath(filename).name  # old browsers send C:\...\name.jpg; / is a separator there too
    path = folder / f"part{index}{_safe_suffix(base)}"
    with open(path, "wb") as out:
        _copy_until(reader, delimiter, out.write)
        size = out.tell()
    form.files[name] = FormFile(name, base, headers.get_content_type(), path, size)


def parse_multipart(
    stream: BinaryIO,
    length: int,
    boundary: bytes,
    folder: Path,
    *,
    chunk_size: int = CHUNK,
    max_field_bytes: int = 64 * 1024,
) -> FormData:
    """Read a ``multipart/form-data`` body of ``length`` bytes from ``stream``.

    File parts are written to ``folder`` as ``part<i><suffix>`` (the suffix of the browser's file name, if
    it is a plain one, so that decoders can guess the format); text fields are decoded as UTF-8. Bytes after
    the closing boundary are read and ignored. Raises ``OstnetError`` for malformed or truncated data.
    """
    reader = _Reader(stream, length, chunk_size)
    delimiter = b"\r\n--" + boundary
    form = FormData()
    _copy_until(reader, delimiter, lambda _preamble: None)
    index = 0
    while _after_delimiter(reader):
        if index >= MAX_PARTS:
            raise OstnetError(f"upload: more than {MAX_PARTS} form parts")
        _read_part(reader, delimiter, folder, index, max_field_bytes, form)
        index += 1
    while reader.fill():  # the epilogue
        reader.buffer.clear()
    return form


__all__ = ["FormData", "FormFile", "boundary_from", "parse_multipart"]
