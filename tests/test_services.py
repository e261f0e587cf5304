"""The real servers the tests start for themselves (tests/services.py) start here, on a fresh
machine and as root as CI runs: SeaweedFS for S3, and PostgreSQL, which refuses root and so runs
as the ``postgres`` user. Scale-out tests depend on both."""

from __future__ import annotations

import subprocess

from tests.services import PostgreSQL, SeaweedFS, postgres_bin


def test_postgresql_starts_and_keeps_what_it_is_given() -> None:
    server = PostgreSQL().start()
    try:
        psql = [postgres_bin("psql"), server.url, "-v", "ON_ERROR_STOP=1", "-At", "-c"]
        subprocess.run([*psql, "CREATE TABLE t (n int); INSERT INTO t VALUES (41), (1)"], check=True)
        total = subprocess.run([*psql, "SELECT sum(n) FROM t"], capture_output=True, text=True, check=True)
        assert total.stdout.strip() == "42"
    finally:
        server.stop()
    assert not server.directory.exists()  # nothing left behind


def test_the_s3_server_keeps_an_object(s3: SeaweedFS, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="a/b", Body=b"kept", ContentType="image/png")
    stored = client.get_object(Bucket=bucket, Key="a/b")
    assert (stored["Body"].read(), stored["ContentType"]) == (b"kept", "image/png")
