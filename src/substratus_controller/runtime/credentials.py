"""Credentials and TLS for the API client: kubernetes-asyncio's configuration loaders (kubeconfig with
exec/auth plugins, or the in-cluster service account with token-file refresh), the request's Authorization
header, and the TLS context. Tokens never leave this module except in that header."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from .kubeconfig import load_config_modules

Configuration = Any  # kubernetes_asyncio.client.Configuration, imported lazily (see kubeconfig.py)


async def load_configuration(
    kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None
) -> Configuration:
    """Resolve credentials: `kubeconfig` if given, else in-cluster, else $KUBECONFIG, else ~/.kube/config."""
    config = load_config_modules()
    load_kube_config, load_incluster_config = config.load_kube_config, config.load_incluster_config
    cfg = config.kube_config.Configuration()
    if kubeconfig:
        await load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=cfg, persist_config=False
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        load_incluster_config(client_configuration=cfg)
    else:
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
        await load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
    return cfg


def ssl_context(cfg: Configuration) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def auth_headers(cfg: Configuration) -> dict[str, str]:
    """The Authorization header for the configured bearer token or basic auth (none when neither is set)."""
    token = await cfg.get_api_key_with_prefix("BearerToken")
    if token:
        return {"Authorization": token if token.startswith("Bearer ") else f"Bearer {token}"}
    if cfg.username:
        return {"Authorization": cfg.get_basic_auth_token()}
    return {}
