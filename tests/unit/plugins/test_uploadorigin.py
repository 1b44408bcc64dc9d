"""plugins/uploadorigin.py: which origins may receive a build context (fast tier, pure)."""

from __future__ import annotations

import pytest

from substratus_controller.plugins.uploadorigin import (
    UPLOAD_ORIGINS_ENV,
    configured_origins,
    is_cloud_storage,
    origin,
    parse_origins,
    upload_refusal,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.244.0.1:8082/upload/x?sig=1", "http://10.244.0.1:8082"),
        ("HTTPS://Storage.GoogleAPIs.com/b/o", "https://storage.googleapis.com:443"),
        ("http://localhost/x", "http://localhost:80"),
        ("file:///etc/passwd", ""),
        ("ftp://host/x", ""),
        ("http://:80/x", ""),
        ("http://host:notaport/x", ""),
    ],
)
def test_origin(url: str, expected: str) -> None:
    assert origin(url) == expected


def test_parse_origins_takes_commas_and_lines_and_skips_junk() -> None:
    text = "http://a:1, https://b\n\nnot-a-url\nfile:///x"
    assert parse_origins(text) == {"http://a:1", "https://b:443"}


def test_configured_origins_joins_the_cluster_and_the_user() -> None:
    cm = {"data": {"origins": "http://10.244.0.1:8082"}}
    assert configured_origins(cm, {UPLOAD_ORIGINS_ENV: "http://127.0.0.1:9000"}) == {
        "http://10.244.0.1:8082",
        "http://127.0.0.1:9000",
    }
    assert configured_origins(None, {}) == set()


@pytest.mark.parametrize(
    ("url", "cloud"),
    [
        ("https://storage.googleapis.com/b/o?X-Goog-Signature=1", True),
        ("https://my-bucket.s3.eu-west-1.amazonaws.com/k?X-Amz-Signature=1", True),
        ("https://s3.amazonaws.com/b/k", True),
        ("http://storage.googleapis.com/b/o", False),
        ("https://storage.googleapis.com:8443/b/o", False),
        ("https://evil-amazonaws.com/x", False),
        ("https://storage.googleapis.com.evil.example/x", False),
    ],
)
def test_cloud_storage_hosts(url: str, cloud: bool) -> None:
    assert is_cloud_storage(url) is cloud


def test_refusal_names_the_origin_never_the_signed_url() -> None:
    message = upload_refusal("http://evil.example:81/p?sig=topsecret", {"http://10.244.0.1:8082"})
    assert message is not None
    assert "http://evil.example:81" in message
    assert "topsecret" not in message
    assert UPLOAD_ORIGINS_ENV in message
    assert upload_refusal("http://10.244.0.1:8082/p?sig=x", {"http://10.244.0.1:8082"}) is None
