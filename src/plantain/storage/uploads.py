"""Files uploaded through Gemini's Files API (``client.files.upload``), to be used as input images
by name (``fileData`` with ``files/ID`` or the file's ``uri``).

A file is a row in ``uploads`` (migration 9) owned by the key id that uploaded it: every read
takes that key id, and another caller's file is as unknown as one that never existed. An upload is
a resumable session: :meth:`Uploads.start` makes the row (state ``uploading``) and an unguessable
session token, each chunk is a row in ``upload_chunks`` written in its own transaction (so the
next chunk may reach another front door of a cluster), and the last chunk finalizes it: the bytes
go to the file store (``Blobs``, key ``upload-<id>``) durably *before* the transaction that marks
the file ``active`` and drops its chunks. A file expires ``retention_seconds`` after its upload
began, session or not; :meth:`Uploads.expire` deletes the expired rows and then their bytes.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from plantain.errors import InvalidRequestError, NotFoundError
from plantain.storage.blobs import Blobs
from plantain.storage.db import Connection, Database, Row

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 20  # never 32, the length of an output file id (/v1/files/{id} is shared)
BLOB_PREFIX = "upload-"


@dataclass(frozen=True)
class Upload:
    id: str  # the name is files/<id>
    api_key_id: str
    display_name: str
    mime_type: str
    size_bytes: int  # declared at start; the stored size once active
    received: int  # bytes of a session received so far
    state: str  # "uploading" or "active"
    sha256: str | None
    created_at: float
    updated_at: float
    expires_at: float

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    @property
    def blob_key(self) -> str:
        return blob_key(self.id)


def blob_key(upload_id: str) -> str:
    return f"{BLOB_PREFIX}{upload_id}"


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


class Uploads:
    """Uploaded files in the task database, their bytes in ``blobs``. Thread-safe."""

    def __init__(
        self,
        database: Database,
        blobs: Blobs,
        *,
        retention_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._blobs = blobs
        self.retention_seconds = retention_seconds
        self._clock = clock

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self._database.transaction()

    # --- sessions ---------------------------------------------------------------------------

    def start(
        self, api_key_id: str, *, display_name: str, mime_type: str, size_bytes: int
    ) -> tuple[Upload, str]:
        """A new file in state ``uploading`` and its session token (the upload URL's secret)."""
        upload_id, session = new_id(), secrets.token_urlsafe(24)
        with self._transaction() as db:
            now = self._clock()
            db.execute(
                "INSERT INTO uploads (id, session, api_key_id, display_name, mime_type, size_bytes, "
                "received, state, created_at, updated_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, 'uploading', ?, ?, ?)",
                (
                    upload_id,
                    session,
                    api_key_id,
                    display_name,
                    mime_type,
                    size_bytes,
                    now,
                    now,
                    now + self.retention_seconds,
                ),
            )
            return _upload(_row(db, upload_id)), session

    def session(self, session: str) -> Upload:
        """The file a session token uploads, or NotFoundError (unknown, finished or expired)."""
        with self._database.read() as db:
            return self._session(db, session)

    def _session(self, db: Connection, session: str) -> Upload:
        row = db.execute(
            "SELECT * FROM uploads WHERE session = ? AND state = 'uploading' AND expires_at > ?",
            (session, self._clock()),
        ).fetchone()
        if row is None:
            raise _no_session()
        return _upload(row)

    def append(self, session: str, offset: int, data: bytes) -> Upload:
        """Record the chunk ``data`` at ``offset``, which must be where the session stands; the
        session may not pass its declared size."""
        with self._transaction() as db:
            upload = self._session(db, session)
            if offset != upload.received:
                raise InvalidRequestError(
                    f"X-Goog-Upload-Offset: {offset} is not where this upload stands; send the "
                    f"bytes from offset {upload.received}",
                    field="X-Goog-Upload-Offset",
                )
            if upload.received + len(data) > upload.size_bytes:
                raise InvalidRequestError(
                    f"X-Goog-Upload-Header-Content-Length: the upload declared {upload.size_bytes} "
                    f"bytes and this chunk would make it {upload.received + len(data)}",
                    field="X-Goog-Upload-Header-Content-Length",
                )
            if data:
                db.execute(
                    "INSERT INTO upload_chunks (upload_id, start_offset, data) VALUES (?, ?, ?)",
                    (upload.id, offset, data),
                )
            db.execute(
                "UPDATE uploads SET received = ?, updated_at = ? WHERE id = ?",
                (upload.received + len(data), self._clock(), upload.id),
            )
            return _upload(_row(db, upload.id))

    def assemble(self, session: str) -> tuple[Upload, bytes]:
        """The session's file and every byte received, in order."""
        with self._database.read() as db:
            upload = self._session(db, session)
            chunks = db.execute(
                "SELECT data FROM upload_chunks WHERE upload_id = ? ORDER BY start_offset", (upload.id,)
            ).fetchall()
        return upload, b"".join(bytes(chunk["data"]) for chunk in chunks)

    def activate(self, upload: Upload, data: bytes, media_type: str) -> Upload:
        """Store ``data`` (the whole file) durably, then mark ``upload`` active and drop its chunks."""
        self._blobs.put(upload.blob_key, data, media_type)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE uploads SET state = 'active', size_bytes = ?, received = ?, sha256 = ?, "
                "mime_type = ?, updated_at = ? WHERE id = ? AND state = 'uploading'",
                (
                    len(data),
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                    media_type,
                    self._clock(),
                    upload.id,
                ),
            ).rowcount
            db.execute("DELETE FROM upload_chunks WHERE upload_id = ?", (upload.id,))
            if not changed:
                raise _no_session()
            return _upload(_row(db, upload.id))

    def abandon(self, upload: Upload) -> None:
        """Forget a session that cannot finish (its file refused at finalize)."""
        with self._transaction() as db:
            db.execute("DELETE FROM uploads WHERE id = ? AND state = 'uploading'", (upload.id,))

    # --- files ------------------------------------------------------------------------------

    def get(self, api_key_id: str, upload_id: str) -> Upload:
        """``api_key_id``'s active file, or NotFoundError naming it (unknown, another caller's,
        still uploading, deleted or expired)."""
        with self._database.read() as db:
            row = db.execute(
                "SELECT * FROM uploads WHERE id = ? AND api_key_id = ? AND state = 'active' "
                "AND expires_at > ?",
                (upload_id, api_key_id, self._clock()),
            ).fetchone()
        if row is None:
            raise self.not_found(upload_id)
        return _upload(row)

    def data(self, api_key_id: str, upload_id: str) -> tuple[Upload, bytes]:
        """The file and its bytes, or NotFoundError naming it."""
        upload = self.get(api_key_id, upload_id)
        try:
            return upload, self._blobs.get(upload.blob_key)
        except FileNotFoundError:  # expired and swept between the two reads
            raise self.not_found(upload_id) from None

    def page(
        self, api_key_id: str, *, limit: int, after: str | None = None
    ) -> tuple[list[Upload], str | None]:
        """``api_key_id``'s active files, newest first; ``after`` is the cursor (a file id) the
        previous page returned."""
        where = "api_key_id = ? AND state = 'active' AND expires_at > ?"
        params: list[Any] = [api_key_id, self._clock()]
        with self._database.read() as db:
            if after is not None:
                anchor = db.execute(
                    "SELECT created_at FROM uploads WHERE id = ? AND api_key_id = ?", (after, api_key_id)
                ).fetchone()
                if anchor is None:
                    raise InvalidRequestError(
                        f"pageToken: {after!r} is not a page of this list (or its file is gone); send "
                        "the nextPageToken of the previous page, or none for the first page",
                        field="pageToken",
                    )
                where += " AND (created_at, id) < (?, ?)"
                params += [anchor["created_at"], after]
            rows = db.execute(
                f"SELECT * FROM uploads WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        uploads = [_upload(row) for row in rows[:limit]]
        return uploads, (uploads[-1].id if len(rows) > limit else None)

    def delete(self, api_key_id: str, upload_id: str) -> None:
        """Delete ``api_key_id``'s file and its bytes, or NotFoundError naming it."""
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM uploads WHERE id = ? AND api_key_id = ? AND state = 'active' AND expires_at > ?",
                (upload_id, api_key_id, self._clock()),
            ).rowcount
        if not deleted:
            raise self.not_found(upload_id)
        self._blobs.delete(blob_key(upload_id))

    def expire(self) -> int:
        """Delete expired files (and unfinished sessions) with their chunks, then their bytes."""
        with self._transaction() as db:
            rows = db.execute(
                "DELETE FROM uploads WHERE expires_at <= ? RETURNING id, state", (self._clock(),)
            ).fetchall()
        for row in rows:
            if row["state"] == "active":
                self._blobs.delete(blob_key(row["id"]))
        return len(rows)

    def keys(self) -> set[str]:
        """The file-store keys of every active file (so a sweep of orphan files spares them)."""
        with self._database.read() as db:
            rows = db.execute("SELECT id FROM uploads WHERE state = 'active'").fetchall()
        return {blob_key(row["id"]) for row in rows}

    def not_found(self, upload_id: str) -> NotFoundError:
        return NotFoundError(
            f"file 'files/{upload_id}' does not exist: it was never uploaded by this API key, was "
            f"deleted, or has expired (uploads are kept {self.retention_seconds:g} seconds, "
            "retention_seconds)",
            field="name",
        )


def _no_session() -> NotFoundError:
    return NotFoundError(
        "this upload session does not exist: it finished, was refused, or expired; start a new upload",
        field="upload_id",
    )


def _row(db: Connection, upload_id: str) -> Row:
    row: Row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    return row


def _upload(row: Row) -> Upload:
    return Upload(
        id=row["id"],
        api_key_id=row["api_key_id"],
        display_name=row["display_name"],
        mime_type=row["mime_type"],
        size_bytes=int(row["size_bytes"]),
        received=int(row["received"]),
        state=row["state"],
        sha256=row["sha256"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        expires_at=float(row["expires_at"]),
    )
