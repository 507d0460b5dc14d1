"""ironlb's admission webhooks: MetalLB's validating webhooks and the BGPPeer conversion, with self-managed TLS.

:mod:`validate` and :mod:`conversion` are pure (review in, review out); :mod:`certs` keeps the certificate in a
Secret and its CA in the webhook configuration; :mod:`server` serves them over HTTPS. The controller runs
:func:`serve_webhooks`. The server's names are imported on first use: the speaker's metrics endpoint needs
:mod:`certs` only, not the webhook server and the configuration models behind it.
"""

from typing import TYPE_CHECKING

from ironlb import lazy

if TYPE_CHECKING:
    from ironlb.webhooks.server import Webhooks, WebhookServer, rest_lister, serve_webhooks

__getattr__ = lazy.attributes(
    __name__, dict.fromkeys(("Webhooks", "WebhookServer", "rest_lister", "serve_webhooks"), "server")
)

__all__ = ["WebhookServer", "Webhooks", "rest_lister", "serve_webhooks"]
