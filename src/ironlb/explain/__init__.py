"""``ironlb explain``: why a Service has its IP (or none), who announces it, who could, and what a change would do.

:mod:`ironlb.explain.core` computes the explanation from a snapshot with the controller's and speakers' own
functions (pure); :mod:`ironlb.explain.render` prints it; :mod:`ironlb.explain.kube` and
:mod:`ironlb.explain.standalone` read the snapshot from a cluster or from ``ironlb run``'s files.
"""
