"""The signed-URL upload handshake of `spec.build.upload` (pure planning; docs/upstream-behaviour.md §3.3 with
docs/decisions.md §2.6).

Inputs: the upload spec {md5Checksum, requestID}, the current `status.buildUpload`, what storage holds (the
stored object's md5, or None), and `now`.

- Storage already holds the requested md5 -> `Uploaded=True/UploadFound`; `buildUpload` keeps only the
  requestID and `storedMD5Checksum` (the signed URL leaves the status once used); the build may proceed.
- Otherwise, a requestID not yet answered -> sign a new URL (expiry <= 300 s): `buildUpload = {signedURL,
  requestID, expiration}`, `Uploaded=False/AwaitingUpload`.
- A URL outstanding for this requestID -> keep waiting, polling storage every few seconds until it expires.
- An expired URL -> `Uploaded=False/AwaitingUpload` saying so; the URL leaves the status; a new requestID
  asks for a fresh one (no automatic re-signing: an abandoned upload must not cause a write every 5 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from substratus_controller.api.v1.types import BuildUpload
from substratus_controller.constants import ConditionType, Reason
from substratus_controller.jsontypes import JSON
from substratus_controller.runtime.times import parse_rfc3339, rfc3339
from substratus_controller.status.conditions import Cond

URL_LIFETIME = 300  # seconds; the longest a signed URL may live (S4)
POLL_INTERVAL = 3.0  # seconds between storage checks while an upload is outstanding


@dataclass
class UploadPlan:
    condition: Cond
    status: JSON  # the new status.buildUpload (signedURL filled in by the reconciler when `sign` is set)
    uploaded: bool
    sign: bool = False
    requeue_after: float | None = None


def plan_upload(spec: BuildUpload, status: JSON | None, *, stored_md5: str | None, now: str) -> UploadPlan:
    st = status or {}
    md5 = spec.md5_checksum.lower()
    same_request = st.get("requestID") == spec.request_id
    if stored_md5 == md5:
        message = (
            f"Upload received with matching md5 checksum: {md5}"
            if same_request
            else f"Existing upload found in storage with specified checksum: {md5}"
        )
        return UploadPlan(
            Cond(ConditionType.UPLOADED, True, Reason.UPLOAD_FOUND, message),
            {"requestID": spec.request_id, "storedMD5Checksum": md5},
            uploaded=True,
        )
    waiting = f"Waiting for upload with md5 checksum: {md5}"
    if not same_request:
        expiration = parse_rfc3339(now) + timedelta(seconds=URL_LIFETIME)
        return UploadPlan(
            Cond(ConditionType.UPLOADED, False, Reason.AWAITING_UPLOAD, waiting),
            {"requestID": spec.request_id, "expiration": rfc3339(expiration)},
            uploaded=False,
            sign=True,
            requeue_after=POLL_INTERVAL,
        )
    expires_at = st.get("expiration")
    remaining = (parse_rfc3339(expires_at) - parse_rfc3339(now)).total_seconds() if expires_at else 0.0
    if st.get("signedURL") and remaining > 0:
        return UploadPlan(
            Cond(ConditionType.UPLOADED, False, Reason.AWAITING_UPLOAD, waiting),
            dict(st),
            uploaded=False,
            requeue_after=min(POLL_INTERVAL, remaining + 1),
        )
    kept = {k: v for k, v in st.items() if k not in ("signedURL", "expiration")}
    return UploadPlan(
        Cond(
            ConditionType.UPLOADED,
            False,
            Reason.AWAITING_UPLOAD,
            f"The signed URL for request {spec.request_id} expired; set a new spec.build.upload.requestID to get "
            "a new one",
        ),
        kept,
        uploaded=False,
    )
