"""Prometheus metrics of the runtime, with client-go / controller-runtime names and labels.

One `RuntimeMetrics` per registry; components receive it explicitly (tests inject a fresh
`CollectorRegistry` and read values back with `registry.get_sample_value`). Names and labels match
controller-runtime's so that existing dashboards work:

- controller_runtime_reconcile_total{controller,result}   result: success|error|requeue|requeue_after
- controller_runtime_reconcile_errors_total{controller}
- controller_runtime_terminal_reconcile_errors_total{controller}
- controller_runtime_reconcile_panics_total{controller}
- controller_runtime_reconcile_time_seconds{controller}
- controller_runtime_max_concurrent_reconciles{controller}, controller_runtime_active_workers{controller}
- workqueue_depth / adds_total / queue_duration_seconds / work_duration_seconds / retries_total /
  unfinished_work_seconds / longest_running_processor_seconds, all {name}
- rest_client_requests_total{code,method,host}, rest_client_request_duration_seconds{verb,host}
- leader_election_master_status{name}
Plus informer metrics of our own (no upstream equivalent): informer_relists_total{resource},
informer_watch_restarts_total{resource,reason}, informer_objects{resource}, and the event loop's lateness
(runtime/looplag.py): event_loop_lag_seconds (histogram), event_loop_lag_max_seconds (the worst so far).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# client-go's workqueue buckets: ExponentialBuckets(10e-9, 10, 12) -> 1e-8 s .. 1e3 s.
_WORKQUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
# controller-runtime's reconcile time buckets.
_RECONCILE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
)  # fmt: skip
_REST_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class RuntimeMetrics:
    """All runtime metrics, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        # controller
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.terminal_reconcile_errors = Counter(
            "controller_runtime_terminal_reconcile_errors_total",
            "Total number of terminal reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_panics = Counter(
            "controller_runtime_reconcile_panics_total",
            "Total number of reconciliation panics (unexpected exceptions) per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.max_concurrent_reconciles = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=r,
        )
        # workqueue
        self.workqueue_depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=r)
        self.workqueue_adds = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", ["name"], registry=r
        )
        self.workqueue_queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            ["name"],
            buckets=_WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name"],
            buckets=_WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_unfinished_work = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads.",
            ["name"],
            registry=r,
        )
        self.workqueue_longest_running_processor = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            ["name"],
            registry=r,
        )
        self.workqueue_retries = Counter(
            "workqueue_retries_total", "Total number of retries handled by workqueue", ["name"], registry=r
        )
        # REST client
        self.rest_requests = Counter(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "method", "host"],
            registry=r,
        )
        self.rest_request_duration = Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            ["verb", "host"],
            buckets=_REST_BUCKETS,
            registry=r,
        )
        # leader election
        self.leader_election_master_status = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates "
            "master. 'name' is the string used to identify the lease.",
            ["name"],
            registry=r,
        )
        # informers (ours)
        self.informer_relists = Counter(
            "informer_relists_total", "Number of full LISTs per informer", ["resource"], registry=r
        )
        self.informer_watch_restarts = Counter(
            "informer_watch_restarts_total",
            "Number of watch (re)starts per informer, by reason",
            ["resource", "reason"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "Lateness of the event loop's periodic wake-ups",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.loop_lag_max = Gauge(
            "event_loop_lag_max_seconds", "The largest event-loop lateness seen since start", registry=r
        )
        self.informer_objects = Gauge(
            "informer_objects", "Number of objects in the informer's store", ["resource"], registry=r
        )
