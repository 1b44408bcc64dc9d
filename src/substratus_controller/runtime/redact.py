"""Redaction of secrets in text bound for logs and Events: signed-URL signatures, tokens, credentials.

Invariants: `redact` is idempotent and leaves text without secrets unchanged. Used by the log pipeline
(every value of every log line, nested ones and exceptions included: `redact_value`) and by the Events
recorder (every note).
"""

from __future__ import annotations

import re
from typing import Any

_SECRET_PARAM = r"(?:x-goog-signature|x-amz-signature|signature|sig|[a-z0-9_-]*token|password|passwd)"
# A query ends before whitespace, quotes or brackets, and never with sentence punctuation ("see <url>.").
_URL_WITH_QUERY = re.compile(
    r"(?P<base>\b[a-z][a-z0-9+.-]*://[^\s?#\"'<>]*)\?(?P<query>(?:[^\s#\"'<>]*[^\s#\"'<>.,;:!?)\]])?)", re.I
)
_SECRET_IN_QUERY = re.compile(rf"(?:^|[&;]){_SECRET_PARAM}=", re.I)
_SECRET_ASSIGNMENT = re.compile(rf"(?<![\w-])(?P<key>{_SECRET_PARAM})=(?!REDACTED\b)[^&\s\"'<>,;]+", re.I)
_BEARER = re.compile(r"\b(?P<scheme>bearer)\s+(?!REDACTED\b)[a-z0-9._~+/=-]+", re.I)
# A JSON Web Token anywhere (ServiceAccount tokens, OIDC tokens): header.payload.signature, base64url.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """`text` without secrets.

    - A URL whose query string has a signature, token or password parameter (X-Goog-Signature,
      X-Amz-Signature, Signature, sig, *token incl. X-Amz-Security-Token, password) keeps its scheme, host and
      path; the whole query becomes `REDACTED` (so credentials and expiry go too).
    - Such parameters outside URLs (`token=abc`) keep their name: `token=REDACTED`.
    - `Bearer <token>` becomes `Bearer REDACTED`; any JSON Web Token becomes `REDACTED-JWT`.
    """

    def _url(m: re.Match[str]) -> str:
        return f"{m['base']}?REDACTED" if _SECRET_IN_QUERY.search(m["query"]) else m[0]

    text = _URL_WITH_QUERY.sub(_url, text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m['key']}=REDACTED", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} REDACTED", text)
    return _JWT.sub("REDACTED-JWT", text)


def redact_value(value: Any) -> Any:
    """`value` with secrets redacted: strings, and strings inside dicts, lists and tuples, at any depth; any
    other value (an exception, an object) whose text holds a secret becomes its redacted text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    cleaned = redact(text)
    return cleaned if cleaned != text else value
