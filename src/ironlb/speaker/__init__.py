"""``ironlb speaker``: MetalLB's speaker for Kubernetes (see :mod:`ironlb.speaker.speaker`).

:mod:`ironlb.announce` (responders, BGP sessions, announced metric) is shared with ``ironlb run``; :mod:`.decide`
and :mod:`.status` are pure; :mod:`.speaker` is the Kubernetes shell and :mod:`.main` the process around it.
"""
