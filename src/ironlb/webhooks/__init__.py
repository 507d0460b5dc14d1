"""ironlb's admission webhooks: MetalLB's validating webhooks and the BGPPeer conversion, with self-managed TLS.

:mod:`validate` and :mod:`conversion` are pure (review in, review out); :mod:`certs` keeps the certificate in a
Secret and its CA in the webhook configuration; :mod:`server` serves them over HTTPS. The controller runs
:func:`serve_webhooks`.
"""

from ironlb.webhooks.server import Webhooks, WebhookServer, rest_lister, serve_webhooks

__all__ = ["WebhookServer", "Webhooks", "rest_lister", "serve_webhooks"]
