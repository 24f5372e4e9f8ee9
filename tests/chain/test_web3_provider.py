"""backend.chain.rpc.web3_provider: web3.py asks the node for the chain id once, not before
every call and transaction (counted at the wire, on anvil), and what requests would read from
the environment on every call (the proxy for the URL, a CA bundle) is read once."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from backend.chain.registry import Deployments, artifact
from backend.chain.rpc import web3_provider
from tests.rpc_counter import RpcCounter


def test_the_chain_id_is_asked_once_for_many_calls(anvil: Any, deployed: Deployments) -> None:
    with RpcCounter(anvil.url) as counter:
        w3 = Web3(web3_provider(counter.url))
        points = w3.eth.contract(
            address=deployed.address("towns.sarabetsu.RegionPoints"),
            abi=artifact("RegionPoints").abi,
        )
        points.functions.totalSupply().call()  # the first call learns the chain id
        with counter.counting() as calls:
            for _ in range(5):
                points.functions.totalSupply().call()
            assert w3.eth.chain_id == deployed.chain_id
    assert calls.count("eth_call") == 5
    assert "eth_chainId" not in calls, calls


def test_the_environment_is_read_once_for_the_url(monkeypatch: Any) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/town-ca.pem")
    outside = web3_provider("https://rpc.example/v1")
    inside = web3_provider("https://node.internal.example/")
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.example:1")  # read once: not seen now
    for provider in (outside, inside):
        session = provider._request_session_manager.cache_and_return_session(provider.endpoint_uri)
        assert session.trust_env is False
        assert session.verify == "/etc/ssl/town-ca.pem"
    session = outside._request_session_manager.cache_and_return_session(outside.endpoint_uri)
    assert session.proxies.get("https") == "http://proxy.example:3128"
    session = inside._request_session_manager.cache_and_return_session(inside.endpoint_uri)
    assert "https" not in session.proxies
