"""Putting one node's decision on the network, shared by ``ironlb speaker`` and ``ironlb run``.

A shell package: it drives the layer 2 responders, the BGP speaker (with BFD) and ``metallb_speaker_announced``.
Both processes import it; neither imports the other (the import contract in pyproject.toml checks that).
"""
