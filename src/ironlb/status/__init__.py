"""Status written back to Kubernetes that both components share."""
