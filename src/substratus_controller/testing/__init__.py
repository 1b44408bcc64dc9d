"""Test support that runs real components: the control plane (etcd + kube-apiserver + controller-manager),
the real node (kubelet + kube-scheduler + containerd) and the images it runs.

Used by the test suites, the benchmarks, the demo and `hack/testenv.sh` / `hack/realnode.sh`. Not imported by
the operator itself.
"""

from .controlplane import Assets, ControlPlane, ControlPlaneError, free_port, running
from .realnode import NodeSettings, RealNode, RealNodeError

__all__ = ["Assets", "ControlPlane", "ControlPlaneError", "NodeSettings", "RealNode", "RealNodeError", "free_port",
           "running"]  # fmt: skip
