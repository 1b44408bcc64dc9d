"""Where the plugins send a build context: only to an upload origin of this cluster (README, Security model).

`status.buildUpload.signedURL` is written by the controller, but anyone allowed to patch the object's status
could write another URL and receive the user's source tarball. So before a PUT the plugin checks the URL's
origin (scheme, host, port) against:
- the cloud storage endpoints the gcp and aws drivers sign for: `https://storage.googleapis.com` and
  `https://*.amazonaws.com` (https only);
- the origins the cluster's administrators publish in ConfigMap `kube-public/substratus-upload-origins`
  (key `origins`, one per line or comma-separated): the local driver's upload server, a custom S3 endpoint.
  Only administrators write kube-public (the trust basis of KEP-1755's local-registry-hosting);
- origins the user names in `SUBSTRATUS_UPLOAD_ORIGINS` (same format).
A refusal names the origin (never the signed URL, which is a credential) and how to allow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from substratus_controller.jsontypes import JSON

UPLOAD_ORIGINS_NAMESPACE = "kube-public"
UPLOAD_ORIGINS_NAME = "substratus-upload-origins"
UPLOAD_ORIGINS_KEY = "origins"
UPLOAD_ORIGINS_ENV = "SUBSTRATUS_UPLOAD_ORIGINS"
CLOUD_HOSTS = ("storage.googleapis.com",)
CLOUD_SUFFIXES = (".amazonaws.com",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """`scheme://host:port` of `url`, lower-case, with the scheme's default port filled in ("" if none)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return ""
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return ""
    return f"{scheme}://{host}:{port}"


def parse_origins(text: str) -> set[str]:
    """The origins in a comma- or newline-separated list (entries that are not http(s) URLs are skipped)."""
    return {o for item in text.replace(",", "\n").splitlines() if (o := origin(item))}


def configured_origins(configmap: JSON | None, env: Mapping[str, str]) -> set[str]:
    """The cluster's published origins and the user's own."""
    published = ((configmap or {}).get("data") or {}).get(UPLOAD_ORIGINS_KEY, "")
    return parse_origins(published) | parse_origins(env.get(UPLOAD_ORIGINS_ENV, ""))


def is_cloud_storage(url: str) -> bool:
    o = origin(url)
    if not o.startswith("https://"):
        return False
    host = o.removeprefix("https://").rsplit(":", 1)[0]
    return o.endswith(":443") and (host in CLOUD_HOSTS or host.endswith(CLOUD_SUFFIXES))


def upload_refusal(url: str, allowed: Iterable[str]) -> str | None:
    """None when `url` may receive the build context, else the message that says why not."""
    if is_cloud_storage(url) or (o := origin(url)) in set(allowed):
        return None
    shown = o or "a URL that is not http(s)"
    return (
        f"refusing to upload the build context to {shown}: not an upload origin of this cluster (the signed "
        f"URL in status.buildUpload may have been written by someone else); if it is yours, list it in "
        f"{UPLOAD_ORIGINS_ENV} or ask an administrator to add it to ConfigMap "
        f"{UPLOAD_ORIGINS_NAMESPACE}/{UPLOAD_ORIGINS_NAME}"
    )
