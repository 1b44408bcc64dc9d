"""Test support that runs real components: the control plane (etcd + kube-apiserver + controller-manager).

Used by the test suites, the benchmarks, the demo and `hack/testenv.sh up|down`. Not imported by the
operator itself.
"""

from .controlplane import Assets, ControlPlane, ControlPlaneError, free_port, running

__all__ = ["Assets", "ControlPlane", "ControlPlaneError", "free_port", "running"]
