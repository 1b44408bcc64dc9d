"""V4 signed upload URLs of the gcp driver, signed offline with a generated service-account key.

The signature is checked independently of google-cloud-storage: the canonical request is rebuilt from the
URL by the rules of Cloud Storage's V4 signing process and verified with the key's public half. The
helpers here are shared with the integration tests (IAM signBlob path, emulator).
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.oauth2 import service_account

from substratus_controller.cloud.base import BucketURL, StorageError
from substratus_controller.cloud.gcp import GCPDriver, _scrub

SIGNER = "uploader@test-project.iam.gserviceaccount.com"
PRINCIPAL = "substratus@test-project.iam.gserviceaccount.com"
OBJECT = BucketURL.parse("gs://test-artifacts/0123456789abcdef0123456789abcdef/uploads/latest.tar.gz")
MD5_HEX = hashlib.md5(b"a tarball", usedforsecurity=False).hexdigest()


def make_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_info(key: rsa.RSAPrivateKey, email: str = SIGNER) -> dict[str, str]:
    """A service-account key file's content (as `gcloud iam service-accounts keys create` writes it)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def key_credentials(key: rsa.RSAPrivateKey, email: str = SIGNER) -> Any:
    return service_account.Credentials.from_service_account_info(service_account_info(key, email))  # type: ignore[no-untyped-call]


def driver(credentials: Any = None, **kwargs: Any) -> GCPDriver:
    return GCPDriver(
        cluster_name="test-cluster",
        artifact_bucket=BucketURL.parse("gs://test-artifacts"),
        registry_url="us-central1-docker.pkg.dev/test-project/substratus",
        principal=PRINCIPAL,
        project_id="test-project",
        credentials=credentials,
        **kwargs,
    )


def _enc(value: str) -> str:
    return quote(value, safe="-_.~")


def verify_v4_put(url: str, *, content_md5: str, public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """Rebuild the V4 string-to-sign of a PUT with the upload headers and verify the signature.

    Returns the query parameters. Raises InvalidSignature when the signature does not cover exactly this
    request (method, path, query, host, Content-Type application/octet-stream, this Content-MD5).
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(query.items()))
    headers = {"content-md5": content_md5, "content-type": "application/octet-stream", "host": parts.netloc}
    signed_headers = ";".join(sorted(headers))
    assert query["X-Goog-SignedHeaders"] == signed_headers
    canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    canonical_request = "\n".join(
        ["PUT", parts.path, canonical_query, canonical_headers, signed_headers, "UNSIGNED-PAYLOAD"]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return query


def b64_md5(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


async def test_signed_put_url_binds_method_type_and_md5(key: rsa.RSAPrivateKey) -> None:
    url = await driver(key_credentials(key)).signed_upload_url(OBJECT, md5_hex=MD5_HEX)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "storage.googleapis.com")
    assert parts.path == "/test-artifacts/0123456789abcdef0123456789abcdef/uploads/latest.tar.gz"
    query = verify_v4_put(url, content_md5=b64_md5(MD5_HEX), public_key=key.public_key())
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Credential"].startswith(f"{SIGNER}/")
    assert query["X-Goog-Credential"].endswith("/auto/storage/goog4_request")
    assert {"content-md5", "content-type", "host"} <= set(query["X-Goog-SignedHeaders"].split(";"))
    assert int(query["X-Goog-Expires"]) == 300
    signed_at = calendar.timegm(time.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ"))
    assert abs(signed_at - time.time()) < 120


async def test_signature_does_not_cover_another_md5_or_type(key: rsa.RSAPrivateKey) -> None:
    url = await driver(key_credentials(key)).signed_upload_url(OBJECT, md5_hex=MD5_HEX)
    other = hashlib.md5(b"another tarball", usedforsecurity=False).hexdigest()
    with pytest.raises(InvalidSignature):
        verify_v4_put(url, content_md5=b64_md5(other), public_key=key.public_key())
    with pytest.raises(InvalidSignature):
        verify_v4_put(url, content_md5=b64_md5(MD5_HEX), public_key=make_key().public_key())


@pytest.mark.parametrize(("asked", "granted"), [(60, 60), (300, 300), (301, 300), (3600, 300), (0, 1)])
async def test_expiry_is_capped_at_300_seconds(key: rsa.RSAPrivateKey, asked: int, granted: int) -> None:
    url = await driver(key_credentials(key)).signed_upload_url(OBJECT, md5_hex=MD5_HEX, expires_in=asked)
    query = verify_v4_put(url, content_md5=b64_md5(MD5_HEX), public_key=key.public_key())
    assert int(query["X-Goog-Expires"]) == granted


async def test_upper_case_md5_is_accepted(key: rsa.RSAPrivateKey) -> None:
    url = await driver(key_credentials(key)).signed_upload_url(OBJECT, md5_hex=MD5_HEX.upper())
    verify_v4_put(url, content_md5=b64_md5(MD5_HEX), public_key=key.public_key())


@pytest.mark.parametrize("bad", ["", "xyz", "0" * 31, "0" * 34, "g" * 32])
async def test_a_bad_md5_is_a_value_error(key: rsa.RSAPrivateKey, bad: str) -> None:
    with pytest.raises(ValueError, match="32 hex"):
        await driver(key_credentials(key)).signed_upload_url(OBJECT, md5_hex=bad)


@pytest.mark.parametrize("url", ["s3://test-artifacts/x", "gs://test-artifacts", "file:///tmp/x"])
async def test_only_gs_objects_are_signed(key: rsa.RSAPrivateKey, url: str) -> None:
    with pytest.raises(ValueError, match=r"gs://|object name"):
        await driver(key_credentials(key)).signed_upload_url(BucketURL.parse(url), md5_hex=MD5_HEX)


async def test_many_concurrent_signatures_all_verify(key: rsa.RSAPrivateKey) -> None:
    gcp = driver(key_credentials(key))
    objects = [OBJECT.join(f"n{i}") for i in range(20)]
    urls = await asyncio.gather(*(gcp.signed_upload_url(o, md5_hex=MD5_HEX) for o in objects))
    for url in urls:
        verify_v4_put(url, content_md5=b64_md5(MD5_HEX), public_key=key.public_key())


def test_scrub_redacts_signatures() -> None:
    text = "GET https://x/b/o?X-Goog-Date=1&X-Goog-Signature=abcdef0123&x=1 failed; x-goog-signature=ff"
    scrubbed = _scrub(text)
    assert "abcdef0123" not in scrubbed
    assert "=ff" not in scrubbed
    assert scrubbed.count("REDACTED") == 2


async def test_signing_failure_is_a_storage_error_without_a_url() -> None:
    """Credentials that cannot sign and an IAM endpoint that refuses connections (a closed loopback port)."""
    from google.oauth2.credentials import Credentials

    from substratus_controller.testing import free_port

    gcp = driver(
        Credentials(token="t"),  # type: ignore[no-untyped-call]
        iam_credentials_endpoint=f"http://127.0.0.1:{free_port()}",
        call_timeout=10,
    )
    with pytest.raises(StorageError) as info:
        await gcp.signed_upload_url(OBJECT, md5_hex=MD5_HEX)
    message = str(info.value)
    assert message.startswith(f"signing an upload URL for {OBJECT}:")
    assert "X-Goog-Signature" not in message
    assert info.value.__cause__ is None
