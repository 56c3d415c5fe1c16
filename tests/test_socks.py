"""wsfast.socks: the SOCKS4, SOCKS4a and SOCKS5 (RFC 1928, RFC 1929) client negotiations, byte by byte.

Each test plays the proxy: it checks every byte the client writes and answers with exact bytes, so both
directions of every exchange and every refusal are covered without a network.
"""

from __future__ import annotations

import pytest

from wsfast.exceptions import HandshakeError, OpeningError, ProxyError
from wsfast.socks import Socks4Negotiation, Socks5Negotiation

SUCCESS_V4 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"  # RFC 1928 §6: REP 0, BND 127.0.0.1:1080


class TestSocks4:
    def test_connect_to_an_ipv4_address(self) -> None:
        negotiation = Socks4Negotiation("10.1.2.3", 443, user_id="alice")
        # VN 4, CD 1 (CONNECT), DSTPORT, DSTIP, USERID, NUL.
        assert negotiation.data_to_send() == b"\x04\x01\x01\xbb\x0a\x01\x02\x03alice\x00"
        assert negotiation.data_to_send() == b""
        negotiation.receive_data(b"\x00\x5a\x00\x00")
        assert not negotiation.established
        negotiation.receive_data(b"\x00\x00\x00\x00")
        assert negotiation.established
        assert negotiation.leftover == b""

    def test_socks4a_sends_the_name(self) -> None:
        negotiation = Socks4Negotiation("example.com", 80, remote_dns=True)
        # DSTIP 0.0.0.1 says "the name follows the user id" (SOCKS4a).
        assert negotiation.data_to_send() == b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00"
        negotiation.receive_data(b"\x00\x5a\x00\x50\x00\x00\x00\x00first")
        assert negotiation.established
        assert negotiation.leftover == b"first"

    def test_a_name_needs_socks4a(self) -> None:
        with pytest.raises(ValueError, match="socks4a"):
            Socks4Negotiation("example.com", 80)

    def test_ipv6_cannot_travel_over_socks4(self) -> None:
        with pytest.raises(ValueError, match="IPv4"):
            Socks4Negotiation("::1", 80)

    def test_nul_in_user_id(self) -> None:
        with pytest.raises(ValueError, match="NUL"):
            Socks4Negotiation("10.0.0.1", 80, user_id="a\0b")

    @pytest.mark.parametrize("code", [91, 92, 93, 99])
    def test_refusals_carry_the_reply_code(self, code: int) -> None:
        negotiation = Socks4Negotiation("10.0.0.1", 80)
        negotiation.data_to_send()
        with pytest.raises(ProxyError) as refused:
            negotiation.receive_data(bytes([0, code]) + b"\x00" * 6)
        assert refused.value.status == code
        assert (refused.value.hop, refused.value.stage) == ("proxy", "proxy")
        assert f"code {code}" in str(refused.value)

    def test_invalid_version_byte(self) -> None:
        negotiation = Socks4Negotiation("10.0.0.1", 80)
        with pytest.raises(ProxyError, match="invalid reply") as broken:
            negotiation.receive_data(b"\x05\x5a\x00\x00\x00\x00\x00\x00")
        assert broken.value.status is None

    def test_eof_before_the_reply(self) -> None:
        negotiation = Socks4Negotiation("10.0.0.1", 80)
        negotiation.receive_data(b"\x00\x5a")
        with pytest.raises(ProxyError, match="closed the connection"):
            negotiation.receive_eof()


class TestSocks5:
    def test_no_authentication_with_a_name(self) -> None:
        negotiation = Socks5Negotiation("example.com", 443)
        assert negotiation.data_to_send() == b"\x05\x01\x00"  # VER, NMETHODS, NO AUTHENTICATION
        negotiation.receive_data(b"\x05\x00")
        # VER 5, CMD CONNECT, RSV, ATYP 3 (DOMAINNAME), length, name, port.
        assert negotiation.data_to_send() == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
        negotiation.receive_data(SUCCESS_V4[:7])
        assert not negotiation.established
        negotiation.receive_data(SUCCESS_V4[7:] + b"\x81\x02")
        assert negotiation.established
        assert negotiation.leftover == b"\x81\x02"

    @pytest.mark.parametrize(
        ("host", "destination"),
        [
            ("192.0.2.7", b"\x01\xc0\x00\x02\x07"),
            ("2001:db8::1", b"\x04" + bytes.fromhex("20010db8" + "0" * 23 + "1")),
        ],
    )
    def test_addresses(self, host: str, destination: bytes) -> None:
        negotiation = Socks5Negotiation(host, 80)
        negotiation.data_to_send()
        negotiation.receive_data(b"\x05\x00")
        assert negotiation.data_to_send() == b"\x05\x01\x00" + destination + b"\x00\x50"

    @pytest.mark.parametrize(
        "reply",
        [
            b"\x05\x00\x00\x04" + b"\x00" * 16 + b"\x00\x50",  # BND is IPv6
            b"\x05\x00\x00\x03\x04name\x00\x50",  # BND is a name
        ],
    )
    def test_reply_address_types(self, reply: bytes) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        negotiation.receive_data(b"\x05\x00")
        negotiation.receive_data(reply[:-1])
        assert not negotiation.established
        negotiation.receive_data(reply[-1:])
        assert negotiation.established
        assert negotiation.leftover == b""

    def test_username_and_password(self) -> None:
        negotiation = Socks5Negotiation("example.com", 80, username="user", password="pass")
        assert negotiation.data_to_send() == b"\x05\x02\x00\x02"  # offers none and username/password
        negotiation.receive_data(b"\x05\x02")
        assert negotiation.data_to_send() == b"\x01\x04user\x04pass"  # RFC 1929 §2
        negotiation.receive_data(b"\x01\x00")
        assert negotiation.data_to_send().startswith(b"\x05\x01\x00\x03")
        negotiation.receive_data(SUCCESS_V4)
        assert negotiation.established

    def test_everything_in_one_read(self) -> None:
        negotiation = Socks5Negotiation("example.com", 80, username="user", password="pass")
        negotiation.data_to_send()
        negotiation.receive_data(b"\x05\x02\x01\x00" + SUCCESS_V4)
        assert negotiation.established
        assert negotiation.data_to_send() == b"\x01\x04user\x04pass\x05\x01\x00\x03\x0bexample.com\x00\x50"

    def test_proxy_may_skip_authentication_offered(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80, username="user", password="pass")
        negotiation.data_to_send()
        negotiation.receive_data(b"\x05\x00")
        assert negotiation.data_to_send()[:4] == b"\x05\x01\x00\x01"

    def test_wrong_password(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80, username="user", password="S3CRET")
        negotiation.receive_data(b"\x05\x02")
        with pytest.raises(ProxyError) as refused:
            negotiation.receive_data(b"\x01\x01")
        assert refused.value.status == 1
        assert "user name or password" in str(refused.value)
        assert "S3CRET" not in str(refused.value)

    def test_no_acceptable_method_says_credentials_may_be_needed(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        with pytest.raises(ProxyError, match="user name and password") as refused:
            negotiation.receive_data(b"\x05\xff")
        assert refused.value.status == 0xFF

    def test_method_not_offered(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        with pytest.raises(ProxyError, match="not offered"):
            negotiation.receive_data(b"\x05\x02")

    @pytest.mark.parametrize("code", range(1, 10))
    def test_refusals_carry_the_reply_code(self, code: int) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        negotiation.receive_data(b"\x05\x00")
        with pytest.raises(ProxyError) as refused:
            negotiation.receive_data(bytes([5, code, 0, 1]) + b"\x00" * 6)
        assert refused.value.status == code
        assert isinstance(refused.value, OpeningError)
        assert isinstance(refused.value, HandshakeError)

    @pytest.mark.parametrize(
        ("answers", "message"),
        [
            ([b"\x04\x00"], "invalid reply"),
            ([b"\x05\x02", b"\x02\x00"], "invalid authentication reply"),
            ([b"\x05\x00", b"\x04\x00\x00\x01\x00"], "invalid reply"),
            ([b"\x05\x00", b"\x05\x00\x00\x07\x00"], "unknown address type"),
        ],
    )
    def test_broken_replies(self, answers: list[bytes], message: str) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80, username="u", password="p")
        for answer in answers[:-1]:
            negotiation.receive_data(answer)
        with pytest.raises(ProxyError, match=message) as broken:
            negotiation.receive_data(answers[-1])
        assert broken.value.status is None

    def test_eof_during_the_negotiation(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        negotiation.receive_data(b"\x05\x00\x05")
        with pytest.raises(ProxyError, match="SOCKS5 proxy closed the connection"):
            negotiation.receive_eof()

    def test_bytes_after_the_negotiation_are_refused(self) -> None:
        negotiation = Socks5Negotiation("10.0.0.1", 80)
        negotiation.receive_data(b"\x05\x00" + SUCCESS_V4)
        negotiation.receive_eof()  # harmless once established
        with pytest.raises(RuntimeError, match="over"):
            negotiation.receive_data(b"x")

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"host": "a." * 128}, "1 to 255 bytes"),
            ({"host": "a" * 64}, "not a valid host name"),
            ({"username": "u" * 256, "password": "p"}, "at most 255"),
            ({"username": "u", "password": "p" * 256}, "at most 255"),
            ({"port": 0}, "out of range"),
        ],
    )
    def test_limits(self, kwargs: dict[str, object], message: str) -> None:
        arguments: dict[str, object] = {"host": "example.com", "port": 80, **kwargs}
        with pytest.raises(ValueError, match=message):
            Socks5Negotiation(**arguments)  # type: ignore[arg-type]
