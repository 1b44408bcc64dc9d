"""Controller framework (informer, store, workqueue, controller loop, client, manager).

Knows nothing about Substratus: it imports no module of this package outside `runtime`.
"""
