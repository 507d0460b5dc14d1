"""ironlb's BFD authentication extension: a BFDProfile annotation naming a Secret (MetalLB ignores it)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict

import pytest

from ironlb.bfd.fsm import BFDAuth
from ironlb.bfd.service import profile_auth
from ironlb.bfd.wire import AuthType
from ironlb.config.types import BFDProfile

from .helpers import config_of, error_of

PROFILE = """
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: b, namespace: metallb-system, annotations: {ironlb.io/bfd-auth-secret: bfdkey}}
spec: {receiveInterval: 100}
"""


def secret(**data: str) -> str:
    return "---\n" + json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bfdkey", "namespace": "metallb-system"},
         "stringData": data}
    ) + "\n"  # fmt: skip


def test_profile_with_authentication_secret() -> None:
    key = secrets.token_hex(8)
    cfg = config_of(PROFILE + secret(password=key, type="keyed-sha1", keyID="7"))
    auth = cfg.bfd_profiles[0].auth
    assert auth is not None and (auth.type, auth.key_id, auth.password) == ("keyed-sha1", 7, key)
    assert key not in repr(cfg.bfd_profiles[0])
    assert profile_auth(cfg.bfd_profiles[0]) == BFDAuth(AuthType.KEYED_SHA1, 7, key.encode())
    # Defaults: Meticulous Keyed SHA1, key ID 1.
    default = config_of(PROFILE + secret(password=key)).bfd_profiles[0]
    assert profile_auth(default) == BFDAuth(AuthType.METICULOUS_KEYED_SHA1, 1, key.encode())
    # Without the annotation: no authentication.
    assert config_of(PROFILE.replace("annotations: {ironlb.io/bfd-auth-secret: bfdkey}", "")).bfd_profiles[0].auth is None
    # The fast process receives profiles as JSON.
    assert BFDProfile.from_dict(json.loads(json.dumps(asdict(default)))) == default


@pytest.mark.parametrize(
    ("data", "message", "transient"),
    [
        (None, 'secret "bfdkey" for BFD authentication not found in namespace "metallb-system"', True),
        ({"password": "k", "type": "md5"}, 'BFD authentication type "md5" is not supported', False),
        ({"password": "k", "keyID": "256"}, 'keyID "256" must be a number in 0-255', False),
        ({"password": "k", "keyID": "-1"}, "must be a number in 0-255", False),
        ({"password": "x" * 21}, "password must be 1-20 bytes", False),
        ({"type": "keyed-sha1"}, "password must be 1-20 bytes", False),
    ],
)
def test_authentication_secret_errors(data: dict[str, str] | None, message: str, transient: bool) -> None:
    err = error_of(PROFILE + (secret(**data) if data is not None else ""))
    text = str(err)
    assert message in text and 'BFDProfile "b": metadata.annotations[ironlb.io/bfd-auth-secret]' in text, text
    assert err.transient is transient
