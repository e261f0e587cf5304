"""Output files in an S3-compatible bucket (``storage_url=s3://BUCKET/PREFIX``), through boto3:
AWS S3, or any server that speaks its API (SeaweedFS, MinIO, Cloudflare R2, Backblaze B2...).

Objects are ``PREFIX/KEY`` with the image's media type, so a presigned URL serves them as images.
A put returns once the server has acknowledged the whole object, which S3 servers store durably.
boto3 clients are thread-safe; one is shared by every thread of the process.
"""

from __future__ import annotations

from typing import Any

from plantain.errors import ConfigurationError
from plantain.settings import Settings

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as missing:  # pragma: no cover - the cluster extra is not installed
    raise ConfigurationError(
        "storage_url is an s3:// bucket, which needs boto3: pip install 'plantain[cluster]'"
    ) from missing

MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Blobs:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix  # "" or "some/prefix/" (with its slash)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Blobs:
        assert settings.storage_url is not None
        bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
        secret = settings.s3_secret_access_key
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            # Path-style URLs work on every S3-compatible server (virtual hosts need DNS for each
            # bucket); retries in "standard" mode cover throttling and dropped connections.
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )
        return cls(client, bucket, f"{prefix}/" if prefix else "")

    def put(self, key: str, data: bytes, media_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=media_type)

    def get(self, key: str) -> bytes:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING_CODES:
                raise FileNotFoundError(f"{self.describe()}/{key}") from None
            raise
        body: bytes = answer["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)  # no error when absent

    def keys(self) -> list[str]:
        found: list[str] = []
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            found += [item["Key"].removeprefix(self.prefix) for item in page.get("Contents", [])]
        return [key for key in found if key and "/" not in key]  # this store's own objects only

    def download_url(self, key: str, media_type: str, seconds: int) -> str | None:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.prefix + key, "ResponseContentType": media_type},
            ExpiresIn=seconds,
        )
        return url

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def check(self) -> None:
        """The bucket exists and these credentials may use it: a server that could not store its
        outputs must not start and fail every task."""
        endpoint = self._client.meta.endpoint_url
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            why = {
                "404": "does not exist (create it first)",
                "NoSuchBucket": "does not exist (create it first)",
                "403": "refuses these credentials (s3_access_key_id, s3_secret_access_key)",
            }
            raise ConfigurationError(
                f"storage_url {self.describe()}: the bucket {self.bucket!r} at {endpoint} "
                f"{why.get(code, f'answered {code}')}"
            ) from None
        except BotoCoreError as exc:  # no answer: a wrong s3_endpoint_url, or the server is down
            raise ConfigurationError(
                f"storage_url {self.describe()}: no S3 server answered at {endpoint} (s3_endpoint_url): {exc}"
            ) from None
