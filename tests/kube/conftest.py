"""This directory's control plane fixtures (see :mod:`tests.support.kube_fixtures`)."""

from tests.support.kube_fixtures import control_plane, make_control_plane, namespace

__all__ = ["control_plane", "make_control_plane", "namespace"]
