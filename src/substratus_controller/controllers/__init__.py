"""Per-kind reconcilers in the observe -> plan -> apply -> report shape, on top of `runtime`."""
