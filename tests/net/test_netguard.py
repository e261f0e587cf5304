"""The outbound-address guard refuses every non-public spelling of an address and nothing public."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from plantain.errors import ConfigurationError, InvalidRequestError
from plantain.net.guard import BlockedURLError, Target, resolve_target

REFUSED = [
    # IPv4 loopback, private, link-local, shared and special ranges
    "http://127.0.0.1/",
    "http://127.255.255.254:8080/hook",
    "http://localhost/",
    "https://LOCALHOST./x",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://192.0.2.1/",
    # IPv4 spelled in decimal, octal, hex and short forms
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://2852039166/",
    "http://012.0.0.1/",
    "http://ｌｏｃａｌｈｏｓｔ/",
    # IPv6 literals
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:8080/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fd00:ec2::254]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    # IPv6 forms that embed IPv4
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[::a9fe:a9fe]/",
    "http://[::8.8.8.8]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2002:a00:1::]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b:1::7f00:1]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[2001::1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(BlockedURLError) as caught:
        resolve_target(url, field="webhook")
    assert caught.value.code == "url_blocked"
    assert caught.value.field == "webhook"
    assert caught.value.message.startswith("webhook: ")
    assert "PLANTAIN_ALLOWED_HOSTS" in caught.value.message


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://8.8.8.8/", "8.8.8.8"),
        ("https://1.1.1.1:8443/hook?x=1", "1.1.1.1"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("http://[2001:4860:4860::8888]/", "2001:4860:4860::8888"),
        ("http://[::ffff:8.8.8.8]/", "::ffff:8.8.8.8"),
        ("http://[2002:808:808::1]/", "2002:808:808::1"),
        ("http://[64:ff9b::8.8.8.8]/", "64:ff9b::808:808"),
        ("http://134744072/", "8.8.8.8"),
    ],
)
def test_public_addresses_pass(url: str, address: str) -> None:
    target = resolve_target(url, field="webhook")
    assert target.addresses == (address,)
    assert target.scheme in {"http", "https"}


def test_target_carries_scheme_host_and_default_or_explicit_port() -> None:
    assert resolve_target("HTTPS://8.8.8.8/x", field="webhook") == Target(
        "https", "8.8.8.8", 443, ("8.8.8.8",)
    )
    assert resolve_target("http://8.8.8.8/", field="webhook").port == 80
    assert resolve_target("http://[2606:4700:4700::1111]:8080/", field="webhook") == Target(
        "http", "2606:4700:4700::1111", 8080, ("2606:4700:4700::1111",)
    )


def test_message_names_field_url_address_and_reason() -> None:
    with pytest.raises(BlockedURLError) as caught:
        resolve_target("http://127.0.0.1:9/x", field="webhook")
    assert str(caught.value) == (
        "webhook: 'http://127.0.0.1:9/x' resolves to 127.0.0.1, a loopback address; outbound requests "
        "to loopback, private, link-local and metadata addresses are refused (allow-list it with "
        "PLANTAIN_ALLOWED_HOSTS to permit it)"
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/", "169.254.169.254, a cloud metadata address"),
        ("http://0x7f.1/", "resolves to 127.0.0.1, a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "an IPv4-mapped address embedding 10.0.0.1, a private address"),
        ("http://[2002:a9fe:a9fe::]/", "a 6to4 address embedding 169.254.169.254, a cloud metadata"),
        ("http://[64:ff9b::7f00:1]/", "a NAT64 address embedding 127.0.0.1, a loopback address"),
        ("http://[2001::1]/", "a Teredo tunnel address"),
        ("http://100.64.0.1/", "a carrier-grade NAT address"),
    ],
)
def test_message_explains_why(url: str, words: str) -> None:
    with pytest.raises(BlockedURLError, match=re.escape(words)):
        resolve_target(url, field="webhook")


def test_credentials_in_the_url_are_not_repeated() -> None:
    with pytest.raises(BlockedURLError) as caught:
        resolve_target("http://user:hunter2@127.0.0.1/", field="webhook")
    assert "hunter2" not in caught.value.message
    assert "'http://***@127.0.0.1/'" in caught.value.message


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:9000/", ["127.0.0.1"]),
        ("http://2130706433:9000/", ["127.0.0.1"]),
        ("http://localhost:9000/", ["localhost"]),
        ("http://LocalHost./", ["localhost."]),
        ("http://localhost:9000/", ["localhost:9000"]),
        ("http://127.0.0.1:9000/", ["127.0.0.1:9000"]),
        ("http://[::1]:9000/", ["[::1]:9000"]),
        ("http://[::1]/", ["::1"]),
        ("http://10.1.2.3/", ["10.0.0.0/8"]),
        ("http://[::1]/", ["::1/128"]),
        ("http://localhost/", ["127.0.0.0/8"]),
        ("http://[::ffff:10.1.2.3]/", ["::ffff:10.0.0.0/104"]),
        ("http://192.168.1.1/", ["", " 10.0.0.0/8 ", "192.168.0.0/16"]),
    ],
)
def test_allow_list_permits_hosts_ports_and_networks(url: str, allow: list[str]) -> None:
    target = resolve_target(url, field="webhook", allow=allow)
    assert target.addresses


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:9001/", ["127.0.0.1:9000"]),
        ("http://localhost:9001/", ["localhost:9000"]),
        ("http://127.0.0.2/", ["127.0.0.1"]),
        ("http://localhost/", ["127.0.0.1"]),
        ("http://10.0.0.1/", ["10.0.0.0/32"]),
        ("http://169.254.169.254/", ["10.0.0.0/8", "hooks.internal"]),
        ("http://[::1]/", ["127.0.0.0/8"]),
    ],
)
def test_allow_list_permits_only_what_it_names(url: str, allow: list[str]) -> None:
    with pytest.raises(BlockedURLError):
        resolve_target(url, field="webhook", allow=allow)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not/a/net", "host:port", "host:70000", "[::1]x"])
def test_malformed_allow_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="PLANTAIN_ALLOWED_HOSTS"):
        resolve_target("http://8.8.8.8/", field="webhook", allow=[entry])


@pytest.mark.parametrize(
    "url",
    ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8/", "javascript:alert(1)", "8.8.8.8/hook"],
)
def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(BlockedURLError, match="only http and https"):
        resolve_target(url, field="webhook")


@pytest.mark.parametrize("url", ["http:///path", "https://", "http://:80/", "http://user@/"])
def test_a_host_is_required(url: str) -> None:
    with pytest.raises(BlockedURLError, match="has no host"):
        resolve_target(url, field="webhook")


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8:99999/",
        "http://8.8.8.8:port/",
        "http://[::1/",
        "http://8.8.8.8\\@127.0.0.1/",
        "http://127.0.0.1\t/",
        " http://127.0.0.1/",
        "http://8.8.8.8\n.evil/",
        "http://%31%32%37.0.0.1/",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(BlockedURLError):
        resolve_target(url, field="webhook")


def test_unresolvable_host_is_refused_naming_the_host() -> None:
    with pytest.raises(
        BlockedURLError, match=re.escape("'does-not-exist.invalid', which does not resolve")
    ) as caught:
        resolve_target("http://does-not-exist.invalid/", field="webhook")
    assert caught.value.field == "webhook"


def test_blocked_url_error_is_an_invalid_request() -> None:
    assert issubclass(BlockedURLError, InvalidRequestError)
    assert BlockedURLError.status == 400


def _fake_getaddrinfo(answers: dict[str, list[str]], calls: list[str]) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(host)
        results: list[Any] = []
        for address in answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            results.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return results

    return getaddrinfo


def test_a_name_with_any_private_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = {"rebind.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "10.0.0.5"]}
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo(answers, calls))
    with pytest.raises(BlockedURLError, match=re.escape("resolves to 10.0.0.5, a private address")):
        resolve_target("https://rebind.example.com/hook", field="webhook")
    assert calls == ["rebind.example.com"]


def test_a_name_resolves_once_and_keeps_every_public_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = {
        "hooks.example.com": ["93.184.215.14", "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    }
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo(answers, calls))
    target = resolve_target("https://hooks.example.com/hook", field="webhook")
    assert target == Target(
        "https", "hooks.example.com", 443, ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    )
    assert calls == ["hooks.example.com"]


def test_an_allowed_name_passes_whatever_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"hooks.internal": ["10.0.0.7", "fd00::7"]}
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo(answers, []))
    target = resolve_target("http://hooks.internal:8080/", field="webhook", allow=["hooks.internal"])
    assert target.addresses == ("10.0.0.7", "fd00::7")
    with pytest.raises(BlockedURLError, match="fd00::7"):
        resolve_target("http://hooks.internal:8080/", field="webhook", allow=["10.0.0.0/8"])


def test_a_resolver_failure_is_refused_naming_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(BlockedURLError, match=re.escape("'gone.example.com', which does not resolve")):
        resolve_target("https://gone.example.com/hook", field="webhook")
