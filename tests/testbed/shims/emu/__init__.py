"""Emulated system and Kubernetes tools for the gimme test bed (run only inside a node)."""
