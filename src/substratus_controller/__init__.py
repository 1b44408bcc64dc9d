"""substratus-controller: a Kubernetes operator for substratus.ai/v1 Datasets, Models, Notebooks and Servers."""

__version__ = "0.1.0"
