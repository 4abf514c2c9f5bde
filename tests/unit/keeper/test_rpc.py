"""Retry classification and backoff of the keeper's RPC calls (pure: a fake sleep)."""

from __future__ import annotations

import pytest
import requests
from web3.exceptions import ContractLogicError, Web3RPCError

from backstop.chain.rpc import Retrier, RpcUnavailable, is_transient


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


def test_transport_failures_are_transient_and_answers_are_not():
    assert is_transient(requests.ConnectionError("dropped"))
    assert is_transient(requests.Timeout("slow"))
    assert is_transient(http_error(502))
    assert is_transient(http_error(429))
    assert is_transient(Web3RPCError("x", rpc_response={"error": {"code": -32005, "message": "rate limit"}}))
    assert not is_transient(http_error(400))
    assert not is_transient(ContractLogicError("execution reverted", data="0x12345678"))
    assert not is_transient(
        Web3RPCError("x", rpc_response={"error": {"code": -32000, "message": "nonce too low"}})
    )
    assert not is_transient(ValueError("bad argument"))


def test_retries_with_exponential_backoff_then_succeeds():
    sleeps: list[float] = []
    retrier = Retrier(max_retries=5, base_delay=0.05, max_delay=0.15, sleep=sleeps.append)
    outcomes = iter([requests.ConnectionError(), http_error(503), requests.Timeout(), "ok"])

    def flaky():
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    assert retrier.call("eth_call", flaky) == "ok"
    assert sleeps == [0.05, 0.1, 0.15]
    assert retrier.retries == 3


def test_gives_up_after_max_retries_with_the_cause_chained():
    retrier = Retrier(max_retries=2, sleep=lambda _: None)

    def down():
        raise requests.ConnectionError("refused")

    with pytest.raises(RpcUnavailable) as info:
        retrier.call("eth_blockNumber", down)
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert retrier.retries == 2


def test_a_revert_is_raised_at_once_without_retrying():
    calls = []
    retrier = Retrier(sleep=lambda _: pytest.fail("must not sleep"))

    def revert():
        calls.append(1)
        raise ContractLogicError("execution reverted", data="0x12345678")

    with pytest.raises(ContractLogicError):
        retrier.call("eth_call", revert)
    assert calls == [1]
