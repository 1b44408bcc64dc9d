"""Pure renderers of the desired children (Jobs, Pods, Deployments, Services, ConfigMaps, SAs, PVCs).

No I/O: no runtime, no os, no Kubernetes client. Input: typed objects and configuration; output: plain dicts.
"""
