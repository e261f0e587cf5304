"""The settings of scale-out (docs/deploy.md): where output files live when they are not on this
machine's disk, and the per-key quotas every front door enforces from the shared store. A base of
:class:`~plantain.settings.model.Settings`, so they are ordinary ``PLANTAIN_*`` settings; unset,
nothing of the cluster path is imported and no quota applies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings


def check_storage_url(value: str | None) -> str | None:
    """``s3://bucket`` or ``s3://bucket/prefix``, or unset (local files)."""
    if value is None:
        return None
    scheme, _, rest = value.partition("://")
    bucket = rest.split("/", 1)[0]
    if scheme != "s3" or not bucket:
        raise ValueError(
            "it must be s3://BUCKET or s3://BUCKET/PREFIX (any S3-compatible server: set "
            "s3_endpoint_url for one that is not AWS), or unset for files under <data_dir>/files"
        )
    return value.rstrip("/")


def check_database_url(value: str | None) -> str | None:
    """``postgresql://…`` (or ``postgres://``), or unset (SQLite in the data directory)."""
    if value is None or value == "":
        return None
    if value.partition("://")[0] not in ("postgresql", "postgres"):
        raise ValueError(
            "it must be a PostgreSQL URL, postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset "
            "for SQLite in <data_dir>/plantain.db"
        )
    return value


class KeyQuota(BaseModel):
    """One key's quotas; a field left out takes the server-wide default, ``null`` is no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, ge=1)
    concurrent_tasks: int | None = Field(default=None, ge=1)
    images_per_day: int | None = Field(default=None, ge=1)


class ScaleOutSettings(BaseSettings):
    database_url: Annotated[str | None, AfterValidator(check_database_url)] = Field(
        default=None,
        description="Where tasks, events, webhooks and usage are kept: unset, SQLite in "
        "<data_dir>/plantain.db (one server process); postgresql://USER:PASSWORD@HOST/DB, a "
        "PostgreSQL database shared by every front door and worker (needs `pip install "
        "plantain[cluster]`).",
    )
    storage_url: Annotated[str | None, AfterValidator(check_storage_url)] = Field(
        default=None,
        description="Where output files are kept: unset, <data_dir>/files on this machine; "
        "s3://BUCKET/PREFIX, an S3-compatible bucket shared by every server (needs "
        "`pip install plantain[cluster]`).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3-compatible server's URL, e.g. http://seaweedfs:8333 or "
        "https://ACCOUNT.r2.cloudflarestorage.com; unset: AWS S3.",
    )
    s3_region: str = Field(default="us-east-1", description="The bucket's region (signing needs one).")
    s3_access_key_id: str | None = Field(
        default=None,
        description="S3 access key id; unset: boto3's own lookup (AWS_ACCESS_KEY_ID, ~/.aws, an "
        "instance role).",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="S3 secret access key, with s3_access_key_id."
    )
    file_downloads: Literal["proxy", "redirect"] = Field(
        default="proxy",
        description="How GET /v1/files/{id} answers when files are in a bucket: proxy sends the "
        "bytes through this server; redirect answers 307 to a presigned bucket URL valid for "
        "presigned_url_seconds (the client must reach the bucket). Local files are always sent.",
    )
    presigned_url_seconds: int = Field(
        default=300, ge=10, le=7 * 86400, description="How long a redirect's presigned URL works."
    )
    serve_worker: bool = Field(
        default=True,
        description="Whether `plantain serve` runs a worker in its own process too. false (`serve "
        "--no-worker`): a front door only, for a cluster whose workers are `plantain worker` "
        "processes; needs database_url.",
    )
    poll_seconds: float = Field(
        default=0.1,
        ge=0.01,
        le=10,
        description="With database_url, how often a front door reads new events of the tasks its "
        "callers watch, and an idle worker looks for queued tasks: the shared store is the only "
        "link between processes.",
    )
    lease_seconds: float = Field(
        default=30.0,
        ge=2,
        le=3600,
        description="How long a worker's claim on a running task lasts unless renewed (a third of it "
        "between renewals); a task whose worker stops renewing is queued again after it.",
    )
    quota_requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Requests each API key may submit in any 60 s (unset: no limit); more get 429 "
        "quota_exceeded with Retry-After.",
    )
    quota_concurrent_tasks: int | None = Field(
        default=None,
        ge=1,
        description="Tasks each API key may have queued or running at once (unset: no limit).",
    )
    quota_images_per_day: int | None = Field(
        default=None,
        ge=1,
        description="Images each API key may ask for per UTC day, counted when a request is "
        "accepted (unset: no limit).",
    )
    key_quotas: dict[str, KeyQuota] = Field(
        default_factory=dict,
        description='Quotas of single keys by key id (as GET /v1/usage shows it), e.g. {"3f2a9c1b": '
        '{"requests_per_minute": 600, "images_per_day": null}}; a field left out takes the default.',
    )
