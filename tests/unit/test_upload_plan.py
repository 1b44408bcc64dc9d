"""The upload handshake's pure planning: every state of status.buildUpload against what storage holds."""

from __future__ import annotations

from substratus_controller.api.v1.types import BuildUpload
from substratus_controller.plan.upload import URL_LIFETIME, plan_upload

MD5 = "0123456789abcdef0123456789abcdef"
NOW = "2026-01-01T00:00:00Z"
SPEC = BuildUpload.model_validate({"md5Checksum": MD5.upper(), "requestID": "r2"})


def test_a_new_request_gets_a_url_valid_for_at_most_300_seconds() -> None:
    plan = plan_upload(SPEC, {"requestID": "r1", "storedMD5Checksum": "f" * 32}, stored_md5=None, now=NOW)
    assert plan.sign
    assert not plan.uploaded
    assert plan.status == {"requestID": "r2", "expiration": "2026-01-01T00:05:00Z"}
    assert URL_LIFETIME == 300
    assert (plan.condition.reason, plan.condition.ok) == ("AwaitingUpload", False)
    assert plan.requeue_after is not None
    assert plan.requeue_after <= 5


def test_an_outstanding_url_is_kept_and_storage_polled() -> None:
    status = {"requestID": "r2", "signedURL": "https://x/upload?sig=1", "expiration": "2026-01-01T00:05:00Z"}
    plan = plan_upload(SPEC, status, stored_md5=None, now="2026-01-01T00:01:00Z")
    assert not plan.sign
    assert plan.status == status
    assert plan.requeue_after is not None
    assert 0 < plan.requeue_after <= 5


def test_the_verified_upload_removes_the_url_and_records_the_md5() -> None:
    status = {"requestID": "r2", "signedURL": "https://x/upload?sig=1", "expiration": "2026-01-01T00:05:00Z"}
    plan = plan_upload(SPEC, status, stored_md5=MD5, now="2026-01-01T00:01:00Z")
    assert plan.uploaded
    assert plan.status == {"requestID": "r2", "storedMD5Checksum": MD5}
    assert plan.condition.message.startswith("Upload received")


def test_content_already_in_storage_needs_no_upload() -> None:
    plan = plan_upload(SPEC, None, stored_md5=MD5, now=NOW)
    assert plan.uploaded
    assert not plan.sign
    assert plan.condition.message.startswith("Existing upload found")


def test_an_expired_url_leaves_the_status_and_asks_for_a_new_request_id() -> None:
    status = {"requestID": "r2", "signedURL": "https://x/upload?sig=1", "expiration": "2026-01-01T00:05:00Z"}
    plan = plan_upload(SPEC, status, stored_md5=None, now="2026-01-01T00:05:01Z")
    assert not plan.sign, "no automatic re-signing"
    assert plan.requeue_after is None, "no polling after expiry"
    assert plan.status == {"requestID": "r2"}
    assert "requestID" in plan.condition.message
