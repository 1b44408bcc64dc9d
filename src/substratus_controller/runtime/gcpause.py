"""Keep Python's cyclic garbage collector away from bulk cache loads.

Decoding a LIST creates hundreds of thousands of containers; each allocation burst triggers collections
that scan everything already cached, which was all of the informer's event-loop lag spikes (hundreds of
ms per pass at 10,000 objects, see bench/results). Cached objects are acyclic JSON (freed by reference
counting), so the collector has nothing to find among them.

- `paused()`: a context manager that disables the collector while any caller is inside (reference
  counted, so concurrent relists compose). On the way out it moves everything alive into the permanent
  generation (`gc.freeze`) before re-enabling: otherwise the first allocation afterwards would scan all the
  freshly loaded objects at once (a ~200 ms pause at 10,000 Jobs). The price: a reference cycle created
  during the relist is never collected (the decoded JSON has none).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_we_disabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _we_disabled  # noqa: PLW0603 - one process-wide collector
    if _depth == 0:
        _we_disabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.freeze()
            if _we_disabled:
                gc.enable()
