"""The generated population: counts and shares, clipped leverage, the size grid, determinism, and
every pair opening on the reference model with the fees charged (either side the maker)."""

from __future__ import annotations

import copy
from decimal import Decimal

import numpy as np
import pytest

from backstop.model import Model, ModelRevert
from backstop.orders import FAR_EXPIRY, Order
from backstop.risk.config import RiskConfigError, load_risk_yaml, parse_risk_config
from backstop.risk.population import SIZE_TICK, allocate, generate_pairs, opening_margin
from backstop.units import WAD
from tests.unit.risk.conftest import BASE

D = Decimal


def config(**population):
    raw = copy.deepcopy(load_risk_yaml(BASE))
    raw["population"].update(population)
    return parse_risk_config(raw)


def open_all(cfg, pairs, long_makes: bool) -> Model:
    """Deposits and opens every pair on a fresh model (raises ModelRevert if one cannot)."""
    model = Model(cfg.collateral_decimals)
    for m in cfg.markets:
        model.add_market(m.model_params(), m.mock_price)
    for i, pair in enumerate(pairs):
        long, short = f"0x{2 * i + 1:040x}", f"0x{2 * i + 2:040x}"
        model.deposit(long, pair.long_margin)
        model.deposit(short, pair.short_margin)
        price = cfg.markets[pair.market].mock_price
        buy = Order(long, pair.market, True, pair.size, price, 0, FAR_EXPIRY)
        sell = Order(short, pair.market, False, pair.size, price, 0, FAR_EXPIRY)
        maker, taker = (buy, sell) if long_makes else (sell, buy)
        model.match(maker, True, taker, True, pair.size)
    return model


def test_allocation_is_exact():
    assert allocate((D("0.7"), D("0.3")), 100) == (70, 30)
    assert allocate((D("0.5"), D("0.25"), D("0.25")), 3) == (1, 1, 1)
    assert allocate((D("0.5"), D("0.5")), 3) == (2, 1)  # a tie goes to the earlier market
    assert allocate((D(0), D(1)), 5) == (0, 5)


def test_counts_shares_grid_and_leverage_clip():
    cfg = config(
        accounts=400,
        markets={"ETH": D("0.7"), "BTC": D("0.3")},
        leverage={"lognormal": {"mean": 8, "sigma": 1}},
    )
    lab = cfg.lab()
    assert lab.accounts == 400 and len(lab.pairs) == 200
    assert [p.market for p in lab.pairs] == [0] * 140 + [1] * 60
    scale = 10**12
    clipped = 0
    for pair in lab.pairs:
        market = cfg.markets[pair.market]
        assert pair.size > 0 and pair.size % SIZE_TICK == 0
        floor = opening_margin(market, pair.size, market.mock_price, scale)
        notional = pair.size * market.mock_price / WAD / scale
        for margin in (pair.long_margin, pair.short_margin):
            assert margin >= floor
            assert notional / margin <= WAD / market.im_ratio  # at most 1/im (10x ETH, 5x BTC)
            clipped += margin == floor
    assert clipped > 50  # lognormal around 8x: many sides hit the clip, their margin is the floor


def test_leverage_sets_the_margin_and_table_draws():
    cfg = config(leverage={"fixed": 2}, size={"fixed": 10000})
    for pair in cfg.lab().pairs:
        price = cfg.markets[pair.market].mock_price
        assert pair.size == 10000 * WAD * WAD // price // SIZE_TICK * SIZE_TICK
        notional_tokens = -(-pair.size * price // WAD // 10**12)
        assert pair.long_margin == pair.short_margin == -(-notional_tokens // 2)
    cfg = config(leverage={"table": [[2, 1], [4, 3]]}, size={"table": [[1000, 1], [5000, 1]]}, accounts=2000)
    lab = cfg.lab()
    eth = [p for p in lab.pairs if p.market == 0]
    sizes = {p.size for p in eth}
    assert sizes == {500 * 10**15, 2500 * 10**15}  # 1000 and 5000 at 2000
    ratio = [p.size * 2000 // p.long_margin // 10**12 for p in eth]  # leverage, floored
    share_4x = sum(r >= 3 for r in ratio) / len(ratio)
    assert 0.70 < share_4x < 0.80  # weight 3 of 4


def test_determinism_from_the_population_seed():
    assert config().lab().pairs == config().lab().pairs
    assert config().lab().pairs != config(seed=1).lab().pairs
    cfg = config()
    assert generate_pairs(cfg, np.random.default_rng(7)) == generate_pairs(cfg, np.random.default_rng(7))


@pytest.mark.parametrize("long_makes", [True, False])
def test_every_pair_opens_on_the_model_and_not_with_less(long_makes):
    cfg = config(
        accounts=300,
        leverage={"lognormal": {"mean": 9, "sigma": 0.8}},
        size={"lognormal": {"median": 5000, "sigma": 2}},
    )
    pairs = cfg.lab().pairs
    model = open_all(cfg, pairs, long_makes)
    assert model.markets[0].open_interest[0] == sum(p.size for p in pairs if p.market == 0)
    # The floor is tight: a side clipped to 1/im cannot open with one token unit less ...
    scale = 10**12
    for pair in pairs:
        market = cfg.markets[pair.market]
        floor = opening_margin(market, pair.size, market.mock_price, scale)
        if pair.long_margin == floor:
            short = pair.short_margin
            break
    else:
        pytest.fail("no clipped long side to try")
    # ... when it pays the larger fee (ETH: the taker's; BTC: the maker's)
    long_makes = market.maker_fee_ratio > market.taker_fee_ratio
    with pytest.raises(ModelRevert, match="InsufficientMargin"):
        open_all(cfg, [type(pair)(pair.market, pair.size, floor - 1, short)], long_makes)


def test_the_examples_population_opens():
    from pathlib import Path

    from backstop.risk.config import load_risk_config

    cfg = load_risk_config(Path(__file__).resolve().parents[3] / "risk" / "eth_flash_crash.yaml")
    open_all(cfg, cfg.lab().pairs, long_makes=False)


def test_sizes_below_the_grid_and_open_interest_cap():
    with pytest.raises(RiskConfigError, match=r"^population\.size: notionals below one size tick"):
        config(size={"fixed": D("0.001")}).lab()  # 5e-7 ETH at 2,000
    raw = copy.deepcopy(load_risk_yaml(BASE))
    raw["markets"]["ETH"]["open_interest_cap"] = 50
    with pytest.raises(
        RiskConfigError,
        match=r"^population: the pairs' open interest in ETH \(\d+(\.\d+)?\) exceeds markets\.ETH\.open_interest_cap \(50\)$",
    ):
        parse_risk_config(raw).lab()
