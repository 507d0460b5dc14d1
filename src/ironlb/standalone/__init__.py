"""``ironlb run``: controller and speaker in one process, without Kubernetes, from a directory of manifests."""
