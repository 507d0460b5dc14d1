"""spec.vrf stays rejected (issue 14 item 1), and the message says why: VRF could not be tested here."""

from .helpers import error_of, peer


def test_vrf_rejected_with_the_reason() -> None:
    err = str(error_of(peer("p", "myASN: 64500\npeerASN: 64501\npeerAddress: 10.0.0.1\nvrf: red")))
    assert err.startswith('BGPPeer "p": spec.vrf "red": ')
    assert "VRF is not supported by ironlb" in err
    assert "no vrf link type" in err and "could not be tested" in err and "remove spec.vrf" in err
