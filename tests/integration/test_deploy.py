"""The deploy module: a full suite from a config, idempotent re-runs, and a loud wiring check."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import ape
import pytest

from backstop.chain.manifest import DeploymentMismatch, deploy_or_reuse, verify
from backstop.config import ConfigError, config_from_mapping, load_config
from backstop.units import WAD

ROOT_CONFIG = "config/local.yaml"


@pytest.fixture
def config():
    return load_config(ROOT_CONFIG)


def test_deploy_writes_a_manifest_and_verifies_the_wiring(project, chain, deployer, config, tmp_path):
    deployment, reused = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    assert not reused
    manifest = json.loads((tmp_path / "deployments" / f"{chain.chain_id}.json").read_text())
    assert manifest["chain_id"] == chain.chain_id
    assert manifest["contracts"]["MarginEngine"]["address"] == deployment.engine.address
    assert manifest["contracts"]["MarginEngine"]["block"] > 0
    assert manifest["markets"]["ETH"]["id"] == 0 and manifest["markets"]["BTC"]["id"] == 1
    assert deployment.vault.engine() == deployment.engine.address
    assert deployment.fund.protocol() == deployment.engine.address
    assert deployment.oracle.priceOf(0) == 2000 * WAD
    assert deployment.engine.marketParams(1).imRatio == WAD // 10


def test_rerunning_deploy_is_idempotent(project, chain, deployer, config, tmp_path):
    first, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    head = chain.blocks.head.number
    second, reused = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    assert reused
    assert second.engine.address == first.engine.address
    assert chain.blocks.head.number == head  # nothing sent
    assert second.engine.marketCount() == 2


def test_rerunning_with_a_new_market_lists_only_that_market(project, chain, deployer, config, tmp_path):
    first, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    sol = replace(config.markets[0], name="SOL", mock_price=150 * WAD)
    bigger = replace(config, markets=(*config.markets, sol))
    second, reused = deploy_or_reuse(project, chain, deployer, bigger, root=tmp_path, local=True)
    assert reused and second.engine.address == first.engine.address
    assert second.market_ids == {"ETH": 0, "BTC": 1, "SOL": 2}
    assert second.oracle.priceOf(2) == 150 * WAD


def test_a_parameter_changed_on_chain_fails_the_check_loudly(project, chain, deployer, config, tmp_path):
    deployment, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    eth = config.markets[0]
    tampered = replace(eth, im_ratio=WAD // 5, mm_ratio=WAD // 10)
    deployment.engine.scheduleMarketUpdate(
        0, tampered.params_tuple(deployment.feeds["ETH"].address), sender=deployer
    )
    chain.mine(timestamp=chain.blocks.head.timestamp + config.params_delay)
    deployment.engine.executeMarketUpdate(0, sender=deployer)
    with pytest.raises(DeploymentMismatch) as info:
        verify(deployment, config, deployer=deployer.address)
    assert any("market ETH.imRatio" in p for p in info.value.problems)
    assert any("market ETH.mmRatio" in p for p in info.value.problems)
    with pytest.raises(DeploymentMismatch):
        deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)


def test_a_config_that_disagrees_with_the_chain_fails(project, chain, deployer, config, tmp_path):
    deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    other = replace(config, cooldown=3600)
    with pytest.raises(DeploymentMismatch) as info:
        deploy_or_reuse(project, chain, deployer, other, root=tmp_path, local=True)
    assert any("fund.COOLDOWN" in p for p in info.value.problems)


def test_a_stale_local_manifest_is_redeployed_but_a_live_one_fails(
    project, chain, deployer, config, tmp_path
):
    path = tmp_path / "deployments" / f"{chain.chain_id}.json"
    path.parent.mkdir(parents=True)
    fake = {
        "chain_id": chain.chain_id,
        "contracts": {"MarginEngine": {"address": "0x" + "12" * 20, "block": 1}},
    }
    path.write_text(json.dumps(fake))
    with pytest.raises(DeploymentMismatch):
        deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=False)
    deployment, reused = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    assert not reused and deployment.engine.marketCount() == 2


def test_mocks_are_refused_on_a_live_network(project, chain, deployer, config, tmp_path):
    with pytest.raises(ConfigError, match="non-local"):
        deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=False)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({}, "markets: at least one market is required"),
        (
            {
                "markets": {
                    "ETH": {"price": 1, "maintenance_margin": 0.05, "keeper_reward": 0, "insurance_fee": 0}
                }
            },
            "markets.ETH: initial_margin is required",
        ),
        (
            {
                "markets": {
                    "ETH": {
                        "initial_margin": 0.1,
                        "maintenance_margin": 0.05,
                        "keeper_reward": 0.01,
                        "insurance_fee": 0.01,
                    }
                }
            },
            "markets.ETH: a mock feed needs an initial price",
        ),
        (
            {
                "markets": {
                    "ETH": {
                        "price": 1,
                        "initial_margin": "ten",
                        "maintenance_margin": 0.05,
                        "keeper_reward": 0,
                        "insurance_fee": 0,
                    }
                }
            },
            "markets.ETH.initial_margin: a decimal number expected, got 'ten'",
        ),
        (
            {
                "markets": {
                    "ETH": {
                        "price": 1,
                        "initial_margin": 0.1,
                        "maintenance_margin": 0.05,
                        "keeper_reward": 0,
                        "insurance_fee": 0,
                        "colour": "red",
                    }
                }
            },
            "markets.ETH: unknown key 'colour'; allowed: feed, feed_decimals, heartbeat, initial_margin, "
            "insurance_fee, keeper_reward, keeper_reward_cap, maintenance_margin, maker_fee, "
            "open_interest_cap, price, price_band, taker_fee",
        ),
    ],
)
def test_malformed_configs_are_rejected_with_a_reason(mapping, message):
    with pytest.raises(ConfigError) as info:
        config_from_mapping(mapping)
    assert str(info.value) == message


# --- roles after deployment (docs/design.md §10; finding 1 of issue #15) ----------------------------------


def _role_holders(contract, start_block: int) -> dict[str, set[str]]:
    """Every role of ``contract`` (each ``*_ROLE`` constant in its ABI) with its holders, rebuilt
    from the RoleGranted / RoleRevoked log since ``start_block``: not a guess from a list of
    candidate addresses."""
    names = [a.name for a in contract.contract_type.abi if a.type == "function" and a.name.endswith("_ROLE")]
    by_id = {bytes(getattr(contract, name)()): name for name in names}
    holders: dict[str, set[str]] = {name: set() for name in names}
    stop = contract.chain_manager.blocks.head.number
    events = [
        *contract.RoleGranted.range(start_block, stop + 1),
        *contract.RoleRevoked.range(start_block, stop + 1),
    ]
    for log in sorted(events, key=lambda e: (e.block_number, e.log_index)):
        role = by_id[bytes(log.role)]
        if log.event_name == "RoleGranted":
            holders[role].add(log.account.lower())
        else:
            holders[role].discard(log.account.lower())
    for role, members in holders.items():  # the log and the live state agree
        for member in members:
            assert contract.hasRole(getattr(contract, role)(), member)
    return holders


@pytest.mark.parametrize(
    "separate_roles", [False, True], ids=["deployer-is-admin", "configured-admin-and-guardian"]
)
def test_after_deploy_only_the_engine_holds_an_oracle_role_and_the_configured_accounts_the_engine_roles(
    project, chain, deployer, accounts, config, tmp_path, separate_roles
):
    admin, guardian = (accounts[7].address, accounts[8].address) if separate_roles else (None, None)
    config = replace(config, admin=admin, guardian=guardian)
    d, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    start = min(d.blocks.values())
    engine = d.engine.address.lower()
    me = deployer.address.lower()
    assert _role_holders(d.oracle, start) == {"DEFAULT_ADMIN_ROLE": set(), "ORACLE_ADMIN_ROLE": {engine}}
    expected_admin = (admin or deployer.address).lower()
    expected_guardian = (guardian or deployer.address).lower()
    assert _role_holders(d.engine, start) == {
        "DEFAULT_ADMIN_ROLE": {expected_admin},
        "GUARDIAN_ROLE": {expected_guardian},
    }
    # The vault and the fund have no roles: their one-shot wiring is spent.
    with ape.reverts(d.fund.AlreadyWired):
        d.fund.wire(d.engine.address, d.vault.address, sender=deployer)
    with ape.reverts(d.vault.AlreadyWired):
        d.vault.wire(d.engine.address, d.fund.address, sender=deployer)
    # The deployer can no longer point a market at its own feed or freeze prices.
    feed = project.MockAggregator.deploy(8, 1, "EVIL", sender=deployer)
    with ape.reverts(d.oracle.AccessControlUnauthorizedAccount, account=deployer.address):
        d.oracle.setFeed(0, feed.address, 86_400, sender=deployer)
    with ape.reverts(d.oracle.AccessControlUnauthorizedAccount, account=deployer.address):
        d.oracle.setSequencerFeed(feed.address, 0, sender=deployer)
    with ape.reverts(d.oracle.AccessControlUnauthorizedAccount, account=deployer.address):
        d.oracle.grantRole(d.oracle.ORACLE_ADMIN_ROLE(), me, sender=deployer)
    assert d.oracle.feedOf(0).feed == d.feeds["ETH"].address
    if separate_roles:
        with ape.reverts(d.engine.AccessControlUnauthorizedAccount, account=deployer.address):
            d.engine.scheduleMarketUpdate(0, config.markets[0].params_tuple(feed.address), sender=deployer)
    manifest = json.loads((tmp_path / "deployments" / f"{chain.chain_id}.json").read_text())
    assert manifest["roles"] == {
        "admin": admin or deployer.address,
        "guardian": guardian or deployer.address,
        "params_delay": 172_800,
    }
    assert d.engine.PARAMS_DELAY() == 172_800


# --- nothing sent on a bad config; the manifest only after verification (issue #17) ----------------------


def _sent(chain, deployer) -> tuple[int, int]:
    """What a refused run must not change: the deployer's nonce and the chain's head block."""
    return deployer.nonce, chain.blocks.head.number


def test_a_market_with_mm_above_im_sends_no_transaction(project, chain, deployer, config, tmp_path):
    bad = replace(config.markets[0], mm_ratio=WAD * 12 // 100)  # MM 12 % > IM 10 %
    before = _sent(chain, deployer)
    with pytest.raises(ConfigError) as info:
        deploy_or_reuse(
            project,
            chain,
            deployer,
            replace(config, markets=(bad, config.markets[1])),
            root=tmp_path,
            local=True,
        )
    assert str(info.value) == (
        "markets.ETH: initial_margin must be > maintenance_margin and ≤ 1 "
        "(initial_margin 0.1, maintenance_margin 0.12)"
    )
    assert _sent(chain, deployer) == before
    assert not (tmp_path / "deployments").exists()


def test_a_misspelt_key_or_a_yaml_error_sends_no_transaction(project, chain, deployer, tmp_path):
    text = Path(ROOT_CONFIG).read_text()
    before = _sent(chain, deployer)
    for broken, message in (
        (
            text.replace("insurance:\n", "insurence:\n"),
            "unknown key 'insurence'; allowed: collateral, insurance, markets, oracle, roles",
        ),
        (
            text.replace("  decimals: 6\n", "  decimal: 6\n"),
            "collateral: unknown key 'decimal'; allowed: decimals, token",
        ),
        (
            text.replace("  cooldown: 604800", "  cooldown: [604800"),
            "line 8, column 3: not valid YAML: expected ',' or ']', but got '<scalar>'",
        ),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(broken)
        with pytest.raises(ConfigError) as info:
            deploy_or_reuse(project, chain, deployer, load_config(path), root=tmp_path, local=True)
        assert str(info.value) == f"{path}: {message}"
    assert _sent(chain, deployer) == before


def test_a_failed_verification_leaves_the_manifest_byte_identical(project, chain, deployer, config, tmp_path):
    deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    path = tmp_path / "deployments" / f"{chain.chain_id}.json"
    written = path.read_bytes()
    # MM 5 % → 6 % (within bounds, but not what is on chain), and a new market SOL.
    eth = replace(config.markets[0], mm_ratio=6 * WAD // 100)
    sol = replace(config.markets[0], name="SOL", mock_price=150 * WAD)
    changed = replace(config, markets=(eth, config.markets[1], sol))
    before = _sent(chain, deployer)
    with pytest.raises(DeploymentMismatch) as info:
        deploy_or_reuse(project, chain, deployer, changed, root=tmp_path, local=True)
    assert info.value.problems == [
        "ETH: to schedule; executable 2 d after scheduling, for 14 d",
        "  ETH maintenance margin 5 % → 6 %",
        "listed markets and the sequencer feed change only through the engine's timelock: "
        "`--plan` shows these changes, `--apply` schedules them and executes them when due",
    ]
    assert path.read_bytes() == written
    assert _sent(chain, deployer) == before  # SOL was not listed: the check comes first
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_a_config_that_drops_a_listed_market_is_refused(project, chain, deployer, config, tmp_path):
    first, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    path = tmp_path / "deployments" / f"{chain.chain_id}.json"
    written = path.read_bytes()
    without_btc = replace(config, markets=config.markets[:1])
    before = _sent(chain, deployer)
    with pytest.raises(DeploymentMismatch) as info:
        deploy_or_reuse(project, chain, deployer, without_btc, root=tmp_path, local=True)
    assert str(info.value) == (
        "deployment check failed:\n"
        f"  - market BTC: listed on chain {chain.chain_id} as id 1, but the config drops it; "
        "a listed market is never removed or listed again: put BTC back in the config"
    )
    assert path.read_bytes() == written
    assert _sent(chain, deployer) == before
    # The full config still works afterwards, and lists nothing twice.
    again, reused = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    assert reused and again.engine.address == first.engine.address
    assert again.market_ids == {"ETH": 0, "BTC": 1}
    assert again.engine.marketCount() == 2
    assert _sent(chain, deployer) == before
    assert json.loads(path.read_text())["markets"]["BTC"]["id"] == 1


def test_markets_the_manifest_does_not_know_stop_the_listing(project, chain, deployer, config, tmp_path):
    """A manifest that lost a market (an older deploy's bug, or a hand edit) never leads to a
    second listing: the engine's market count is compared with the manifest before sending."""
    deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    path = tmp_path / "deployments" / f"{chain.chain_id}.json"
    manifest = json.loads(path.read_text())
    del manifest["markets"]["BTC"], manifest["feeds"]["BTC"]
    path.write_text(json.dumps(manifest))
    written = path.read_bytes()
    before = _sent(chain, deployer)
    with pytest.raises(DeploymentMismatch) as info:
        deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    assert info.value.problems == [
        "engine.marketCount: on chain 2, the manifest knows 1 markets; refusing to list any "
        "(a market listed twice cannot be removed)"
    ]
    assert path.read_bytes() == written and _sent(chain, deployer) == before
