"""gimme: disposable Kubernetes clusters on oVirt."""

__version__ = "0.1.0"
