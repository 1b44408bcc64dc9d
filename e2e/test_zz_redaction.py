"""S3: no token, signed URL or signature in any log line of the e2e run (runs last: the file name sorts last).

Scanned: every log our components wrote during the session (the session controller's, the RBAC test's
controllers', anything `*.log` under pytest's temporary directories), looking for the API tokens in use,
JWTs, bearer headers, and signed-URL query parameters of every driver. The scan is only meaningful if the
logs saw uploads and tokens in action, so that is checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from substratus_controller.runtime.redact import redact
from substratus_controller.testing.stack import Stack

pytestmark = pytest.mark.e2e
SECRET_PATTERNS = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "bearer": re.compile(r"Bearer\s+(?!REDACTED)[A-Za-z0-9._~+/-]{8,}", re.IGNORECASE),
    "local signature": re.compile(r"[?&]sig=(?!REDACTED)[0-9a-f]{16,}"),
    "signed local URL": re.compile(r"/upload/[^\s\"]*\?[^\s\"]*md5="),
    "gcs signature": re.compile(r"X-Goog-Signature=(?!REDACTED)", re.IGNORECASE),
    "s3 signature": re.compile(r"X-Amz-Signature=(?!REDACTED)", re.IGNORECASE),
}


def our_logs(stack: Stack, base: Path) -> list[Path]:
    logs = {stack.controller_log, *base.rglob("*.log")}
    return sorted(p for p in logs if p.is_file() and "controlplane" not in p.parts)


def leaks(text: dict[Path, str], tokens: list[str]) -> list[str]:
    """Every secret found in the logs' `text`: one of the `tokens`, or a match of SECRET_PATTERNS."""
    findings = []
    for path, content in text.items():
        if any(token in content for token in tokens):
            findings.append(f"{path}: an API or notebook token")
        for what, pattern in SECRET_PATTERNS.items():
            match = pattern.search(content)
            if match:
                findings.append(f"{path}: {what}: {match.group(0)[:60]}")
    return findings


def test_no_secret_reaches_a_log_line(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert stack.cp is not None
    logs = our_logs(stack, tmp_path_factory.getbasetemp())
    text = {p: p.read_text(errors="replace") for p in logs}
    session_log = text[stack.controller_log]
    # The run exercised what could leak: verified uploads through signed URLs, token-authenticated clients.
    assert '"upload_stored"' in session_log, "no upload went through the controller during the e2e run"
    findings = leaks(text, [stack.cp.token])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize(
    ("what", "leak"),
    [
        ("jwt", "token eyJhbGciOiJSUzI1NiIs.eyJpc3MiOiJrdWJlcm5ldGVz.c2lnbmF0dXJlLXBhcnQ"),
        ("bearer", "Authorization: Bearer abcdef0123456789"),
        ("local signature", "http://127.0.0.1:8082/upload/x?md5=aa&expires=1&sig=0123456789abcdef0123"),
        (
            "signed local URL",
            "http://127.0.0.1:8082/upload/h/uploads/latest.tar.gz?md5=abc&expires=1&sig=0123456789abcdef",
        ),
        ("gcs signature", "https://storage.googleapis.com/b/o?X-Goog-Signature=abc123"),
        ("s3 signature", "https://b.s3.amazonaws.com/o?X-Amz-Signature=abc123"),
    ],
)
def test_the_scan_recognises_each_kind_of_leak_and_redact_removes_it(what: str, leak: str) -> None:
    assert SECRET_PATTERNS[what].search(leak)
    assert not SECRET_PATTERNS[what].search(redact(leak)), redact(leak)
