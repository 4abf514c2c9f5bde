"""``deploy --plan`` and ``deploy --apply`` on a live suite: the plan in human units, the timelock's
timeline (schedule, wait, execute, replace, cancel, expiry), who may apply, and the manifest's
record of what was deployed and what is pending (docs/deploy.md, "Plan and apply")."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from backstop.chain.manifest import DeploymentMismatch, deploy_or_reuse, load_deployment, plan
from backstop.chain.plan import EXECUTION_WINDOW, duration
from backstop.config import load_config
from backstop.units import WAD

DELAY = 172_800  # config/local.yaml roles.params_delay


@pytest.fixture
def config():
    return load_config("config/local.yaml")


@pytest.fixture
def live(project, chain, deployer, config, tmp_path):
    """A suite deployed from config/local.yaml, its manifest under ``tmp_path``."""
    deployment, _ = deploy_or_reuse(project, chain, deployer, config, root=tmp_path, local=True)
    return deployment


def _path(tmp_path, chain):
    return tmp_path / "deployments" / f"{chain.chain_id}.json"


def _with(config, name="ETH", **fields):
    markets = tuple(replace(m, **fields) if m.name == name else m for m in config.markets)
    return replace(config, markets=markets)


def _plan(project, chain, who, config, tmp_path):
    return plan(project, chain, who.address, config, root=tmp_path, local=True, path=_path(tmp_path, chain))


def _apply(project, chain, who, config, tmp_path):
    report: list[str] = []
    deploy_or_reuse(project, chain, who, config, root=tmp_path, local=True, apply=True, report=report)
    return report


def _sent(chain, who):
    return who.nonce, chain.blocks.head.number


def _advance(chain, seconds):
    chain.pending_timestamp += seconds
    chain.mine()


def test_plan_of_an_unchanged_config_says_nothing_to_change(project, chain, deployer, config, live, tmp_path):
    before = _sent(chain, deployer)
    assert _plan(project, chain, deployer, config, tmp_path) == [
        f"nothing to change: the suite on chain {chain.chain_id} matches the config"
    ]
    assert _sent(chain, deployer) == before


def test_plan_shows_changes_in_human_units_and_sends_nothing(
    project, chain, deployer, config, live, tmp_path
):
    changed = _with(config, mm_ratio=6 * WAD // 100, open_interest_cap=120_000 * WAD, heartbeat=3_600)
    sol = replace(config.markets[0], name="SOL", mock_price=150 * WAD)
    changed = replace(changed, markets=(*changed.markets, sol))
    written = _path(tmp_path, chain).read_bytes()
    before = _sent(chain, deployer)
    assert _plan(project, chain, deployer, changed, tmp_path) == [
        "ETH: to schedule; executable 2 d after scheduling, for 14 d",
        "  ETH heartbeat 86,400 s (1 d) → 3,600 s (1 h)",
        "  ETH maintenance margin 5 % → 6 %",
        "  ETH open interest cap 100,000 → 120,000",
        "SOL: new market, listed at once (addMarket) as id 2",
    ]
    assert _sent(chain, deployer) == before
    assert _path(tmp_path, chain).read_bytes() == written


def test_apply_schedules_then_a_later_run_executes_after_the_delay(
    project, chain, deployer, config, live, tmp_path
):
    changed = _with(config, mm_ratio=6 * WAD // 100)
    report = _apply(project, chain, deployer, changed, tmp_path)
    params, eta = live.engine.scheduledMarketUpdate(0)
    assert eta == chain.blocks.head.timestamp + DELAY
    assert params.mmRatio == 6 * WAD // 100
    assert live.engine.marketParams(0).mmRatio == 5 * WAD // 100  # not yet
    assert report[0].startswith("ETH: scheduled; executable from ") and report[0].endswith(
        "(in 2 d) until " + report[0].split(" until ")[1]
    )
    assert report[1:] == ["  ETH maintenance margin 5 % → 6 %"]
    manifest = json.loads(_path(tmp_path, chain).read_text())
    assert manifest["markets"]["ETH"]["mm_ratio"] == str(5 * WAD // 100)  # what is on chain
    assert manifest["pending"] == [
        {
            "target": "ETH",
            "market_id": 0,
            "status": "wait",
            "eta": eta,
            "executable_until": eta + EXECUTION_WINDOW,
            "changes": [{"field": "mmRatio", "from": str(5 * WAD // 100), "to": str(6 * WAD // 100)}],
        }
    ]

    # The plan now shows the wait; a plain run refuses; --apply before the eta sends nothing.
    lines = _plan(project, chain, deployer, changed, tmp_path)
    assert lines[0].startswith("ETH: scheduled, executable from ") and "(in 2 d)" in lines[0]
    with pytest.raises(DeploymentMismatch):
        deploy_or_reuse(project, chain, deployer, changed, root=tmp_path, local=True)
    _advance(chain, DELAY - 120)
    before = _sent(chain, deployer)
    report = _apply(project, chain, deployer, changed, tmp_path)
    assert _sent(chain, deployer) == before
    left = eta - chain.blocks.head.timestamp
    assert 0 < left <= 180
    assert f"(in {duration(left)})" in report[0] and report[0].endswith("run --apply again then")

    _advance(chain, left)
    assert _plan(project, chain, deployer, changed, tmp_path)[0].startswith("ETH: scheduled and due")
    assert _apply(project, chain, deployer, changed, tmp_path) == [
        "ETH: executed",
        "  ETH maintenance margin 5 % → 6 %",
    ]
    assert live.engine.marketParams(0).mmRatio == 6 * WAD // 100
    assert live.engine.scheduledMarketUpdate(0)[1] == 0
    manifest = json.loads(_path(tmp_path, chain).read_text())
    assert manifest["pending"] == [] and manifest["markets"]["ETH"]["mm_ratio"] == str(6 * WAD // 100)
    # Now the config and the chain agree: a plain run verifies and sends nothing.
    before = _sent(chain, deployer)
    deploy_or_reuse(project, chain, deployer, changed, root=tmp_path, local=True)
    assert _sent(chain, deployer) == before


def test_a_config_changed_again_replaces_the_scheduled_change(
    project, chain, deployer, config, live, tmp_path
):
    _apply(project, chain, deployer, _with(config, mm_ratio=6 * WAD // 100), tmp_path)
    first_eta = live.engine.scheduledMarketUpdate(0)[1]
    _advance(chain, 3_600)
    seven = _with(config, mm_ratio=7 * WAD // 100)
    assert _plan(project, chain, deployer, seven, tmp_path)[0].startswith(
        "ETH: a different change is scheduled"
    )
    report = _apply(project, chain, deployer, seven, tmp_path)
    params, eta = live.engine.scheduledMarketUpdate(0)
    assert params.mmRatio == 7 * WAD // 100
    assert eta == chain.blocks.head.timestamp + DELAY > first_eta  # the delay starts again
    assert report[0].startswith("ETH: cancelled the different change and scheduled; executable from ")


def test_a_config_reverted_cancels_the_scheduled_change(project, chain, deployer, config, live, tmp_path):
    _apply(project, chain, deployer, _with(config, mm_ratio=6 * WAD // 100), tmp_path)
    lines = _plan(project, chain, deployer, config, tmp_path)
    assert lines[0].startswith("ETH: matches the config, but a change is scheduled")
    assert lines[1] == "  scheduled: ETH maintenance margin 5 % → 6 %"
    assert _apply(project, chain, deployer, config, tmp_path)[0] == (
        "ETH: cancelled the scheduled change (the chain already matches the config)"
    )
    assert live.engine.scheduledMarketUpdate(0)[1] == 0
    assert live.engine.marketParams(0).mmRatio == 5 * WAD // 100


def test_a_change_left_past_its_window_is_scheduled_again(project, chain, deployer, config, live, tmp_path):
    changed = _with(config, mm_ratio=6 * WAD // 100)
    _apply(project, chain, deployer, changed, tmp_path)
    _advance(chain, DELAY + EXECUTION_WINDOW + 1)
    assert _plan(project, chain, deployer, changed, tmp_path)[0].startswith("ETH: to schedule")
    _apply(project, chain, deployer, changed, tmp_path)
    assert live.engine.scheduledMarketUpdate(0)[1] == chain.blocks.head.timestamp + DELAY
    assert live.engine.marketParams(0).mmRatio == 5 * WAD // 100


def test_the_sequencer_feed_is_applied_through_the_timelock(project, chain, deployer, config, live, tmp_path):
    feed = project.MockAggregator.deploy(0, 0, "sequencer", sender=deployer)
    changed = replace(config, sequencer_feed=feed.address, sequencer_grace_period=1_800)
    assert _plan(project, chain, deployer, changed, tmp_path)[1:] == [
        f"  sequencer sequencer feed none → {feed.address}",
        "  sequencer grace period 0 s → 1,800 s (30 min)",
    ]
    _apply(project, chain, deployer, changed, tmp_path)
    assert live.oracle.sequencerFeed()[0] == "0x" + "0" * 40
    _advance(chain, DELAY)
    assert _apply(project, chain, deployer, changed, tmp_path)[0] == "sequencer: executed"
    assert tuple(live.oracle.sequencerFeed()) == (feed.address, 1_800)


def test_apply_by_an_account_without_the_admin_role_sends_nothing_and_lists_the_calls(
    project, chain, deployer, stranger, config, live, tmp_path
):
    changed = _with(config, mm_ratio=6 * WAD // 100)
    assert _plan(project, chain, stranger, changed, tmp_path)[-1] == (
        f"{stranger.address} is not the engine's admin: --apply must be run by the admin"
    )
    written = _path(tmp_path, chain).read_bytes()
    before = _sent(chain, stranger)
    with pytest.raises(DeploymentMismatch) as info:
        _apply(project, chain, stranger, changed, tmp_path)
    head, call = info.value.problems
    assert head == (
        f"--apply: {stranger.address} is not the engine's admin; send these from the admin "
        f"(engine {live.engine.address}) instead:"
    )
    wanted = changed.markets[0].params_tuple(live.feeds["ETH"].address)
    data = live.engine.scheduleMarketUpdate.encode_input(0, wanted)
    assert call == f"scheduleMarketUpdate{(0, wanted)}: calldata 0x{bytes(data).hex()}"
    assert _sent(chain, stranger) == before
    assert _path(tmp_path, chain).read_bytes() == written
    # The calldata is what the admin (a multisig) would submit: sending it schedules the change.
    deployer.transfer(live.engine.address, 0, data=data)
    assert live.engine.scheduledMarketUpdate(0)[0].mmRatio == 6 * WAD // 100


def test_an_immutable_parameter_changed_is_refused_by_plan_and_apply(
    project, chain, deployer, config, live, tmp_path
):
    changed = replace(config, cooldown=config.cooldown + 1)
    before = _sent(chain, deployer)
    for run in (_plan, _apply):
        with pytest.raises(DeploymentMismatch) as info:
            run(project, chain, deployer, changed, tmp_path)
        assert info.value.problems == [
            f"fund.COOLDOWN: on chain {config.cooldown}, expected {config.cooldown + 1}"
        ]
    assert _sent(chain, deployer) == before


def test_the_manifest_records_txs_code_hashes_constructor_args_and_the_commit(
    project, chain, deployer, live, tmp_path
):
    manifest = json.loads(_path(tmp_path, chain).read_text())
    engine = manifest["contracts"]["MarginEngine"]
    receipt = chain.provider.get_receipt(engine["tx"])
    assert receipt.contract_address == live.engine.address and receipt.block_number == engine["block"]
    code = chain.provider.get_code(live.engine.address)
    from eth_utils import keccak

    assert engine["code_hash"] == "0x" + keccak(bytes(code)).hex()
    assert engine["constructor"] == {
        "vault": live.vault.address,
        "oracle": live.oracle.address,
        "fund": live.fund.address,
        "admin": deployer.address,
        "guardian": deployer.address,
        "paramsDelay": DELAY,
    }
    assert manifest["contracts"]["InsuranceFund"]["constructor"]["cooldown"] == 604_800
    assert len(manifest["source"]["commit"]) == 40 and isinstance(manifest["source"]["dirty"], bool)
    assert manifest["last_run"]["by"] == deployer.address


def test_a_manifest_of_another_chain_or_other_code_is_refused(
    project, chain, deployer, config, live, tmp_path
):
    path = _path(tmp_path, chain)
    manifest = json.loads(path.read_text())
    with pytest.raises(DeploymentMismatch) as info:
        load_deployment(project, chain, {**manifest, "chain_id": 1})
    assert info.value.problems == [f"the manifest describes chain 1, but the node is chain {chain.chain_id}"]
    # Other code at the engine's address: a live network refuses, a local one treats it as stale.
    manifest["contracts"]["MarginEngine"]["code_hash"] = "0x" + "11" * 32
    with pytest.raises(DeploymentMismatch) as info:
        load_deployment(project, chain, manifest, local=False)
    assert info.value.problems[0].startswith(f"MarginEngine at {live.engine.address}: runtime code hash 0x")
    assert info.value.problems[-1] == "the manifest does not describe the contracts on this chain"
    assert load_deployment(project, chain, manifest, local=True) is None
