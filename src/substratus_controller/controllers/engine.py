"""The reconcile of one object: gather -> plan -> carry out the steps -> requeue.

A reconcile reads only the informer caches (controllers/gather.py), computes a complete Plan with one pure
call (plan/), checks that no child's name is taken by an object that is not ours (else it reports
ChildConflict instead: plan/ownership.py), and carries the Plan out as the declared steps of
controllers/steps.py; the status is written once, at the end, only when it changed.

Invariants:
- An object that is gone or being deleted is left to the garbage collector (its children are owned); when
  it was its namespace's last, the namespace's cloud identity is released (controllers/release.py).
- Invalid specs yield an `InvalidSpec`/`UnsupportedGPU` condition and an Event and no retry: only a change
  to the object brings it back.
- A Plan deletes only children the object controls (the observation holds no others), and nothing is
  written over an object the controller did not create.
"""

from __future__ import annotations

from substratus_controller.constants import Kind
from substratus_controller.plan import plan_for
from substratus_controller.plan.ownership import conflict_plan
from substratus_controller.resources import RESOURCE_OF
from substratus_controller.runtime.controller import Request, Result

from .gather import gather
from .operator import Operator
from .release import release_namespace
from .steps import Target, carry_out, taken_children


class Reconciler:
    """Reconciles the objects of one kind."""

    def __init__(self, op: Operator, kind: Kind) -> None:
        self.op = op
        self.kind = kind
        self.resource = RESOURCE_OF[kind]
        self.cache = op.caches.of(self.resource)

    async def __call__(self, req: Request) -> Result:
        op = self.op
        obj = self.cache.get(req.namespace, req.name)
        if obj is None:
            await release_namespace(op, req.namespace or "")
            return Result()
        if obj["metadata"].get("deletionTimestamp"):
            return Result()
        seen = await gather(self.kind, obj, op.caches, op.ctx)
        now = op.now()
        plan = plan_for(seen, ctx=op.ctx, now=now, rng=op.rng)
        target = Target(obj, self.resource, self.cache)
        if taken := await taken_children(op, target, plan):
            plan = conflict_plan(obj, self.kind, taken, now)
        await carry_out(op, target, plan)
        return Result(requeue_after=plan.requeue_after)
