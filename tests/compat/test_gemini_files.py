"""google-genai's Files API (``client.files``) against a live server: resumable uploads (in several
chunks too), get, list, delete, ``fileData`` naming an upload, refusals, per-key isolation; and
the Interactions API answered with the Gemini 404 that lists what is served."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _api_client, errors, types
from google.genai import _interactions_errors as interactions_errors
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input

MODEL = "gemini-2.5-flash-image"
KEYS = ("key-alice", "key-bob")


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    app = create_app(server_settings(api_keys=list(KEYS), max_image_bytes=1024 * 1024))
    with LiveServer(app) as live:
        live.wait_ready()
        yield live.url


def sdk(server: str, key: str = KEYS[0], version: str | None = None) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server, api_version=version))


@pytest.fixture(params=["v1", "v1beta"])
def client(request: pytest.FixtureRequest, server: str) -> genai.Client:
    """google-genai 3.x with its default API version (v1), and v1beta (the Files API's at Google)."""
    return sdk(server, version=None if request.param == "v1" else "v1beta")


def png(width: int = 96, height: int = 64, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return make_input(width, height, color=color, fmt="PNG").data


def refusal(exc: errors.APIError) -> tuple[int, str | None, str]:
    error = exc.details["error"]
    return exc.code, error["details"][0]["metadata"].get("field"), str(exc.message)


def test_upload_get_list_generate_delete(client: genai.Client, tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(data := png())
    uploaded = client.files.upload(file=path, config={"mime_type": "image/png", "display_name": "cat"})
    assert uploaded.name and uploaded.name.startswith("files/")
    assert uploaded.state == types.FileState.ACTIVE and uploaded.source == types.FileSource.UPLOADED
    assert uploaded.size_bytes == len(data) and uploaded.mime_type == "image/png"
    assert uploaded.display_name == "cat" and uploaded.sha256_hash
    assert uploaded.create_time and uploaded.expiration_time and uploaded.uri
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == pytest.approx(86400, abs=1)

    fetched = client.files.get(name=uploaded.name)
    assert fetched.name == uploaded.name and fetched.size_bytes == len(data) and fetched.uri == uploaded.uri
    assert uploaded.name in [file.name for file in client.files.list()]

    # the SDK sends the File as fileData {fileUri: its uri, mimeType}; a bare name works too
    for reference in (uploaded, types.Part.from_uri(file_uri=uploaded.name, mime_type="image/png")):
        response = client.models.generate_content(model=MODEL, contents=[reference, "make it night"])
        assert response.candidates and response.parts and response.parts[0].inline_data
        image = Image.open(io.BytesIO(response.parts[0].inline_data.data or b""))
        assert image.size[0] / image.size[1] == pytest.approx(96 / 64, rel=0.05)  # the input's shape

    client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as gone:
        client.files.get(name=uploaded.name)
    assert gone.value.code == 404 and uploaded.name in str(gone.value.message)
    with pytest.raises(errors.ClientError) as used:
        client.models.generate_content(model=MODEL, contents=[uploaded, "make it night"])
    status, field, message = refusal(used.value)
    assert status == 404 and field == "contents[0].parts[0].fileData.fileUri" and uploaded.name in message


def test_an_upload_in_several_chunks(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_api_client, "CHUNK_SIZE", 4096)  # the SDK's 8 MiB, made small
    noisy = Image.effect_noise((300, 300), 80).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    data = buffer.getvalue()
    assert len(data) > 3 * 4096
    client = sdk(server, version="v1beta")
    uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "image/png"})
    assert uploaded.size_bytes == len(data)
    response = client.models.generate_content(model=MODEL, contents=[uploaded, "make it night"])
    assert response.parts and response.parts[0].inline_data
    client.files.delete(name=uploaded.name or "")


def test_list_pages(server: str) -> None:
    client = sdk(server, key=KEYS[0], version="v1beta")
    names = [
        client.files.upload(file=io.BytesIO(png(color=(i, 0, 0))), config={"mime_type": "image/png"}).name
        for i in range(3)
    ]
    pager = client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    listed = [file.name for file in pager]  # the SDK follows nextPageToken
    assert listed[:3] == names[::-1]  # newest first, across pages
    raw = httpx.get(f"{server}/v1beta/files", params={"pageSize": 2}, headers={"x-goog-api-key": KEYS[0]})
    token = raw.json()["nextPageToken"]
    second = httpx.get(
        f"{server}/v1beta/files",
        params={"pageSize": 2, "pageToken": token},
        headers={"x-goog-api-key": KEYS[0]},
    )
    assert [file["name"] for file in second.json()["files"]][:1] == names[:1]
    bad = httpx.get(f"{server}/v1beta/files", params={"pageSize": "x"}, headers={"x-goog-api-key": KEYS[0]})
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["metadata"]["field"] == "pageSize"
    for name in names:
        client.files.delete(name=name or "")


def test_each_key_sees_only_its_own_files(server: str) -> None:
    alice, bob = sdk(server, KEYS[0], "v1beta"), sdk(server, KEYS[1], "v1beta")
    uploaded = alice.files.upload(file=io.BytesIO(png()), config={"mime_type": "image/png"})
    assert uploaded.name
    assert uploaded.name not in [file.name for file in bob.files.list()]
    with pytest.raises(errors.ClientError) as hidden:
        bob.files.get(name=uploaded.name)
    assert hidden.value.code == 404 and uploaded.name in str(hidden.value.message)
    with pytest.raises(errors.ClientError) as undeletable:
        bob.files.delete(name=uploaded.name)
    assert undeletable.value.code == 404
    with pytest.raises(errors.ClientError) as unusable:
        bob.models.generate_content(model=MODEL, contents=[uploaded, "make it night"])
    assert unusable.value.code == 404 and uploaded.name in str(unusable.value.message)
    assert alice.files.get(name=uploaded.name).name == uploaded.name  # still there for its owner
    alice.files.delete(name=uploaded.name)


def test_refusals_name_the_field_and_the_limit(server: str) -> None:
    client = sdk(server, version="v1beta")
    with pytest.raises(errors.ClientError) as text:
        client.files.upload(file=io.BytesIO(b"hello"), config={"mime_type": "text/plain"})
    status, field, message = refusal(text.value)
    assert (status, field) == (400, "file.mimeType") and "image/png" in message

    with pytest.raises(errors.ClientError) as big:
        client.files.upload(file=io.BytesIO(b"\0" * (1024 * 1024 + 1)), config={"mime_type": "image/png"})
    status, field, message = refusal(big.value)
    assert (
        (status, field) == (400, "file.sizeBytes") and "1048576" in message and "max_image_bytes" in message
    )

    with pytest.raises(errors.ClientError) as fake:  # declared a PNG, sent text
        client.files.upload(file=io.BytesIO(b"not an image at all"), config={"mime_type": "image/png"})
    status, field, message = refusal(fake.value)
    assert (status, field) == (400, "file") and "PNG" in message

    with pytest.raises(errors.ClientError) as unknown:
        client.files.get(name="files/nosuchfile")
    status, field, message = refusal(unknown.value)
    assert status == 404 and unknown.value.status == "NOT_FOUND" and "files/nosuchfile" in message

    with pytest.raises(errors.ClientError) as unknown_input:
        client.models.generate_content(
            model=MODEL,
            contents=[types.Part.from_uri(file_uri="files/nosuchfile", mime_type="image/png"), "x"],
        )
    assert unknown_input.value.code == 404 and "files/nosuchfile" in str(unknown_input.value.message)


def test_upload_needs_a_key_but_output_files_stay_where_they_were(server: str) -> None:
    answer = httpx.post(
        f"{server}/upload/v1beta/files",
        headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"},
        json={"file": {"mimeType": "image/png", "sizeBytes": "10"}},
    )
    assert answer.status_code == 401
    # an output file's id is not an upload's shape: /v1/files/{id} stays the output files' route
    missing = httpx.get(f"{server}/v1/files/{'x' * 32}")
    assert (
        missing.status_code == 404 and "does not exist or has expired" in missing.json()["error"]["message"]
    )


def test_interactions_are_a_gemini_404_listing_what_is_served(server: str) -> None:
    client = sdk(server)  # kept: the SDK closes its HTTP client when the Client is collected
    with pytest.raises(interactions_errors.NotFoundError) as sdk_call:
        client.interactions.create(model=MODEL, input="a red cube")
    assert isinstance(sdk_call.value.body, dict)
    message = sdk_call.value.body["error"]["message"]
    assert "/v1/interactions is not served here" in message and "generateContent" in message
    answer = httpx.post(
        f"{server}/v1beta/interactions",
        headers={"x-goog-api-key": KEYS[0]},
        json={"model": MODEL, "input": "a red cube"},
    )
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert (
        error["status"] == "NOT_FOUND"
        and "Gemini" in error["message"]
        and "generateContent" in error["message"]
    )


def test_uploads_in_an_s3_bucket(
    server_settings: Callable[..., Settings], s3_settings: dict[str, Any]
) -> None:
    app = create_app(server_settings(**s3_settings))
    with LiveServer(app) as live:
        live.wait_ready()
        client = sdk(live.url, version="v1beta")
        uploaded = client.files.upload(file=io.BytesIO(data := png()), config={"mime_type": "image/png"})
        assert uploaded.name
        blobs = app.state.scheduler.store.blobs
        assert blobs.describe().startswith("s3://") and blobs.get(f"upload-{uploaded.name[6:]}") == data
        response = client.models.generate_content(model=MODEL, contents=[uploaded, "make it night"])
        assert response.parts and response.parts[0].inline_data
        client.files.delete(name=uploaded.name)
        with pytest.raises(FileNotFoundError):
            blobs.get(f"upload-{uploaded.name[6:]}")
