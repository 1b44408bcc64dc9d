"""Import kubernetes-asyncio's configuration loaders without its ~1,000 generated API and model classes.

kubernetes-asyncio's `config` package (kubeconfig with exec/auth plugins, in-cluster service account) imports
`kubernetes_asyncio.client`, whose package `__init__` imports every generated API and model class: about
40 MiB of RSS, two thirds of the controller's idle budget (P6), for classes this runtime never uses.

`load_config_modules()` registers lazy stand-ins for the `kubernetes_asyncio` and `kubernetes_asyncio.client`
packages before importing `kubernetes_asyncio.config`:
- the stand-ins have the real packages' `__path__`, so submodules (`client.configuration`, `config.*`) import
  normally, from the installed files;
- `kubernetes_asyncio.client.Configuration` resolves to the real class; `ApiClient`, which the config
  package names only for helpers this runtime does not call, resolves to a function that imports the real
  one when called;
- asking either stand-in for anything else runs the real package `__init__` into that module first, so any
  other code importing kubernetes-asyncio later still gets the complete package (just not up front).
If kubernetes-asyncio was already imported completely, nothing is replaced.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

_TOP = "kubernetes_asyncio"
_CLIENT = "kubernetes_asyncio.client"


def _stand_in(name: str, init: Path, cheap: dict[str, Any]) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    state = {"loaded": False}

    def __getattr__(attr: str) -> Any:  # noqa: N807 - the module-level __getattr__ protocol (PEP 562)
        if attr in cheap and not state["loaded"]:
            return cheap[attr]()
        if not state["loaded"] and not attr.startswith("__"):
            state["loaded"] = True
            loader.exec_module(module)  # the real package __init__, into this same module object
            return getattr(module, attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _configuration() -> Any:
    return importlib.import_module(f"{_CLIENT}.configuration").Configuration


def _api_client() -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        return importlib.import_module(f"{_CLIENT}.api_client").ApiClient(*args, **kwargs)

    return make


def load_config_modules() -> types.ModuleType:
    """Import and return `kubernetes_asyncio.config` (see module docstring)."""
    if _TOP not in sys.modules:
        spec = importlib.util.find_spec(_TOP)  # a top-level find_spec does not execute the package
        if spec is None or spec.origin is None:
            raise ImportError("kubernetes-asyncio is not installed")
        top_init = Path(spec.origin)
        sys.modules[_TOP] = _stand_in(_TOP, top_init, {})
        if _CLIENT not in sys.modules:
            client = _stand_in(_CLIENT, top_init.parent / "client" / "__init__.py",
                               {"Configuration": _configuration, "ApiClient": _api_client})  # fmt: skip
            sys.modules[_CLIENT] = client
    return importlib.import_module(f"{_TOP}.config")
