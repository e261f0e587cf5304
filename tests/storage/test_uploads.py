"""Gemini Files API uploads in the task store (storage/uploads.py), on SQLite and PostgreSQL:
resumable sessions in chunks, per-key isolation, paging, deletion, and expiry with the tasks'
retention; and a session whose chunks reach two stores (front doors) on one PostgreSQL database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantain.errors import InvalidRequestError, NotFoundError
from plantain.storage.blobs import LocalBlobs
from plantain.storage.tasks import TaskStore
from plantain.storage.uploads import Upload, Uploads

RETENTION = 3600.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, database_url: str | None, clock: Clock) -> Iterator[TaskStore]:
    store = TaskStore(tmp_path, retention_seconds=RETENTION, clock=clock, database_url=database_url)
    try:
        yield store
    finally:
        store.close()


def upload(uploads: Uploads, key: str, data: bytes, chunk: int = 4, name: str = "") -> Upload:
    started, session = uploads.start(key, display_name=name, mime_type="image/png", size_bytes=len(data))
    for offset in range(0, len(data), chunk):
        uploads.append(session, offset, data[offset : offset + chunk])
    assembled, whole = uploads.assemble(session)
    assert assembled.id == started.id and whole == data
    return uploads.activate(assembled, whole, "image/png")


def test_a_chunked_upload_is_stored_in_the_blobs_and_read_back(store: TaskStore, clock: Clock) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(50))
    file = upload(store.uploads, "alice", data, name="cat")
    assert file.state == "active" and file.size_bytes == len(data) and file.display_name == "cat"
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.expires_at == clock.now + RETENTION
    assert store.blobs.get(f"upload-{file.id}") == data
    assert store.uploads.data("alice", file.id) == (file, data)
    with store.database.read() as db:  # the session's chunks are gone once it is finalized
        assert db.execute("SELECT COUNT(*) FROM upload_chunks").fetchone()[0] == 0


def test_a_session_refuses_a_wrong_offset_and_more_than_declared(store: TaskStore) -> None:
    _, session = store.uploads.start("alice", display_name="", mime_type="image/png", size_bytes=6)
    store.uploads.append(session, 0, b"abc")
    with pytest.raises(InvalidRequestError) as offset:
        store.uploads.append(session, 1, b"bc")
    assert offset.value.field == "X-Goog-Upload-Offset" and "from offset 3" in offset.value.message
    with pytest.raises(InvalidRequestError) as over:
        store.uploads.append(session, 3, b"defg")
    assert over.value.field == "X-Goog-Upload-Header-Content-Length"
    with pytest.raises(NotFoundError):
        store.uploads.append("no-such-session", 0, b"a")


def test_files_are_their_owners_only(store: TaskStore) -> None:
    file = upload(store.uploads, "alice", b"alice's image")
    for action in (store.uploads.get, store.uploads.data, store.uploads.delete):
        with pytest.raises(NotFoundError) as hidden:
            action("bob", file.id)
        assert f"files/{file.id}" in hidden.value.message
    assert store.uploads.page("bob", limit=10) == ([], None)
    assert store.uploads.get("alice", file.id) == file


def test_an_unfinished_upload_is_not_a_file(store: TaskStore) -> None:
    started, _ = store.uploads.start("alice", display_name="", mime_type="image/png", size_bytes=10)
    with pytest.raises(NotFoundError):
        store.uploads.get("alice", started.id)
    assert store.uploads.page("alice", limit=10) == ([], None)


def test_pages_newest_first(store: TaskStore, clock: Clock) -> None:
    files = []
    for index in range(5):
        clock.now += 1
        files.append(upload(store.uploads, "alice", bytes([index]) * 8))
    first, token = store.uploads.page("alice", limit=2)
    second, token2 = store.uploads.page("alice", limit=2, after=token)
    third, token3 = store.uploads.page("alice", limit=2, after=token2)
    assert [f.id for f in first + second + third] == [f.id for f in reversed(files)]
    assert token3 is None
    with pytest.raises(InvalidRequestError) as bad:
        store.uploads.page("alice", limit=2, after="nonesuch")
    assert bad.value.field == "pageToken"


def test_delete_removes_the_row_and_the_bytes(store: TaskStore) -> None:
    file = upload(store.uploads, "alice", b"some bytes")
    store.uploads.delete("alice", file.id)
    with pytest.raises(NotFoundError):
        store.uploads.get("alice", file.id)
    with pytest.raises(FileNotFoundError):
        store.blobs.get(file.blob_key)
    with pytest.raises(NotFoundError):
        store.uploads.delete("alice", file.id)


def test_uploads_expire_with_the_tasks_retention(store: TaskStore, clock: Clock) -> None:
    file = upload(store.uploads, "alice", b"expiring bytes")
    _, session = store.uploads.start("alice", display_name="", mime_type="image/png", size_bytes=10)
    store.uploads.append(session, 0, b"half")
    clock.now += RETENTION - 1
    store.runs.expire()
    assert store.uploads.get("alice", file.id) == file  # not yet
    clock.now += 1
    with pytest.raises(NotFoundError) as expired:  # refused once due, before the sweep runs
        store.uploads.get("alice", file.id)
    assert "expired" in expired.value.message and "retention_seconds" in expired.value.message
    with pytest.raises(NotFoundError):
        store.uploads.append(session, 4, b"rest")
    store.runs.expire()  # the task store's retention sweep expires uploads too
    with store.database.read() as db:
        assert db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM upload_chunks").fetchone()[0] == 0
    with pytest.raises(FileNotFoundError):
        store.blobs.get(file.blob_key)


def test_the_orphan_sweep_spares_uploaded_files(store: TaskStore) -> None:
    file = upload(store.uploads, "alice", b"keep me")
    store.blobs.put("orphan", b"x", "image/png")
    assert store.runs.sweep_orphan_files() == 1
    assert store.blobs.get(file.blob_key) == b"keep me"


def test_a_session_continues_on_another_front_door(tmp_path: Path, postgres_url: str) -> None:
    """Two stores on one PostgreSQL database (two front doors of a cluster, one bucket or shared
    directory for the files): chunks sent to either make one file."""
    blobs_dir = tmp_path / "shared-files"
    first = TaskStore(
        tmp_path / "a", retention_seconds=RETENTION, database_url=postgres_url, blobs=LocalBlobs(blobs_dir)
    )
    second = TaskStore(
        tmp_path / "b", retention_seconds=RETENTION, database_url=postgres_url, blobs=LocalBlobs(blobs_dir)
    )
    try:
        data = bytes(range(256)) * 3
        _, session = first.uploads.start(
            "alice", display_name="", mime_type="image/png", size_bytes=len(data)
        )
        doors = [first, second]
        for index, offset in enumerate(range(0, len(data), 100)):
            doors[index % 2].uploads.append(session, offset, data[offset : offset + 100])
        assembled, whole = second.uploads.assemble(session)
        file = second.uploads.activate(assembled, whole, "image/png")
        assert first.uploads.data("alice", file.id) == (file, data)
        assert [f.id for f in first.uploads.page("alice", limit=5)[0]] == [file.id]
    finally:
        first.close()
        second.close()
