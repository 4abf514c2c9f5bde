"""The suites the benchmarks deploy: market configs (the parameters of ``config/local.yaml``)."""

from __future__ import annotations

from backstop.chain.deploy import deploy_suite
from backstop.config import MarketConfig, SuiteConfig, market_from_mapping
from bench.chain import Chain, Suite

#: ``config/local.yaml``'s ETH market: IM 10 %, MM 5 %, keeper reward 1 %, insurance fee 1 %,
#: band 5 %, maker fee 2 bp, taker fee 5 bp.
LOCAL_MARKET = {
    "feed": "mock",
    "feed_decimals": 8,
    "heartbeat": 86_400,
    "initial_margin": "0.10",
    "maintenance_margin": "0.05",
    "keeper_reward": "0.01",
    "insurance_fee": "0.01",
    "price_band": "0.05",
    "maker_fee": "0.0002",
    "taker_fee": "0.0005",
    "open_interest_cap": 10**9,
}

#: Four markets with the local parameters; prices chosen so that round sizes have equal notional.
PRICES = {"ETH": 2_000, "BTC": 50_000, "SOL": 200, "ARB": "0.5"}


def market(name: str, price, *, fees: bool = True) -> MarketConfig:
    raw = {**LOCAL_MARKET, "price": price}
    if not fees:
        raw.update(maker_fee=0, taker_fee=0)
    return market_from_mapping(name, raw)


def config(names: tuple[str, ...] = ("ETH",), *, fees: bool = True) -> SuiteConfig:
    return SuiteConfig(markets=tuple(market(n, PRICES[n], fees=fees) for n in names))


def deploy(project, ape_chain, deployer, chain: Chain, cfg: SuiteConfig) -> Suite:
    """Deploys and wires a fresh suite through Ape; returns it addressed through raw JSON-RPC."""
    deployment = deploy_suite(project, ape_chain, deployer, cfg, local=True)
    return Suite.from_deployment(chain, deployment, cfg.collateral_decimals)
