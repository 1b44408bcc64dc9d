"""Real tier, last (the file name sorts last): S3 over the real tier's logs. No API token, notebook token,
JWT or signed URL in the controller's log nor in the node's (containerd, kubelet, kube-scheduler), after
the chain, the failures and `kubectl notebook` ran with real tokens."""

from __future__ import annotations

import base64

from e2e.real.conftest import SEEN_TOKENS
from e2e.test_zz_redaction import leaks
from substratus_controller.runtime import resources as k8s
from substratus_controller.runtime.client import Client
from substratus_controller.testing.stack import Stack


async def test_no_secret_in_the_real_tiers_logs(real_stack: Stack, real_client: Client) -> None:
    assert real_stack.cp is not None
    assert real_stack.node is not None
    secrets = (await real_client.list(k8s.SECRETS, None))["items"]
    notebook_tokens = [
        base64.b64decode(s["data"]["token"]).decode() for s in secrets if "-notebook-token" in s["metadata"]["name"]
    ]
    logs = [real_stack.controller_log, *sorted(real_stack.node.log_dir.glob("*.log"))]
    text = {p: p.read_text(errors="replace") for p in logs if p.is_file()}
    assert real_stack.controller_log in text
    assert "controller_started" in text[real_stack.controller_log]
    findings = leaks(text, [real_stack.cp.token, *SEEN_TOKENS, *notebook_tokens])
    assert not findings, "\n".join(findings)
