"""Snapshots of the Kubernetes objects ironlb reads (Services, Nodes, EndpointSlices, Namespaces).

The core (allocation, election, route planning) is a pure function of these snapshots, so they are plain
immutable values parsed from the objects' dict form, with no client library behind them.
"""
