"""Fixtures of the liquidation tests: an ETH market at 2,000 and a keeper with 100,000 of margin."""

from __future__ import annotations

import pytest

from backstop.units import WAD

PRICE = 2000 * WAD
TOKEN = 10**6


@pytest.fixture
def eth(system, keeper):
    """ETH listed at 2,000 with the default market (IM 10 %, MM 5 %, reward and fee 1 %); the
    keeper deposits 100,000."""
    market = system.add_market(PRICE)
    system.deposit(keeper, 100_000 * TOKEN)
    return market
