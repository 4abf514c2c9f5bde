"""The deploy config (``backstop.config``): the strict schema, YAML errors with line and column,
and the contracts' bounds checked before anything is sent; ``ape run deploy`` on a bad file.

No chain: ``.venv/bin/python -m pytest tests/unit/test_config.py -p no:ape_test -q``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from backstop.config import (
    ConfigError,
    SuiteConfig,
    check_suite,
    config_from_mapping,
    load_config,
    market_problems,
)
from backstop.units import WAD

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "config" / "local.yaml"
MARKET_KEYS = (
    "feed, feed_decimals, heartbeat, initial_margin, insurance_fee, keeper_reward, keeper_reward_cap, "
    "maintenance_margin, maker_fee, open_interest_cap, price, price_band, taker_fee"
)


def local_text() -> str:
    return LOCAL.read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_the_shipped_configs_load_with_their_values():
    local = load_config(LOCAL)
    assert [m.name for m in local.markets] == ["ETH", "BTC"]
    eth = local.markets[0]
    assert (eth.im_ratio, eth.mm_ratio, eth.maker_fee_ratio) == (WAD // 10, WAD // 20, 2 * 10**14)
    assert (eth.keeper_reward_cap, eth.open_interest_cap, eth.mock_price) == (
        1000 * WAD,
        100_000 * WAD,
        2000 * WAD,
    )
    assert (local.collateral_decimals, local.cooldown, local.params_delay) == (6, 604_800, 172_800)
    sepolia = load_config(ROOT / "config" / "sepolia.yaml")
    assert sepolia.collateral_token == "0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238"
    assert sepolia.markets[1].feed == "0x1b44F3514812d835EB1BDB0acB33d3fA3351Ee43"
    assert sepolia.markets[1].heartbeat == 3600 and not sepolia.uses_mocks


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # The two misspellings of issue #17: both were accepted silently before.
        (
            "insurance:\n",
            "insurence:\n",
            "unknown key 'insurence'; allowed: collateral, insurance, markets, oracle, roles",
        ),
        ("  decimals: 6\n", "  decimal: 6\n", "collateral: unknown key 'decimal'; allowed: decimals, token"),
        (
            "  floor: 0 ",
            "  flor: 0 ",
            "insurance: unknown key 'flor'; allowed: cooldown, floor, per_event_cap, window",
        ),
        (
            "  params_delay: 172800",
            "  param_delay: 172800",
            "roles: unknown key 'param_delay'; allowed: admin, guardian, params_delay",
        ),
        (
            "    price_band: 0.05\n",
            "    price_bnd: 0.05\n",
            f"markets.ETH: unknown key 'price_bnd'; allowed: {MARKET_KEYS}",
        ),
        ("  decimals: 6\n", "  decimals: six\n", "collateral.decimals: a whole number expected, got 'six'"),
        ("  cooldown: 604800 ", "  cooldown: 7d ", "insurance.cooldown: a whole number expected, got '7d'"),
        (
            "    initial_margin: 0.10\n",
            "    initial_margin: ten\n",
            "markets.ETH.initial_margin: a decimal number expected, got 'ten'",
        ),
        (
            '  # admin: "0x..."        # lists',
            "  admin: 0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238  # lists",
            'roles.admin: an address must be quoted in YAML ("0x..."): unquoted, it is read as a number',
        ),
        (
            "roles:\n",
            "oracle:\n  sequencer_feed: '0x12'\nroles:\n",
            "oracle.sequencer_feed: an address (0x and 40 hex digits, quoted in YAML) expected, got '0x12'",
        ),
        ("  floor: 0 ", "  floor: -5 ", "insurance.floor: must be ≥ 0, got -5"),
        (
            "  floor: 0 ",
            "  floor: 0.0000001 ",
            "insurance.floor: 0.0000001 has more decimals than the token's 6",
        ),
        ("    maintenance_margin: 0.05\n", "", "markets.ETH: maintenance_margin is required"),
        (
            "  ETH:\n    feed: mock\n    price: 2000\n",
            "  ETH:\n    feed: mock\n",
            "markets.ETH: a mock feed needs an initial price",
        ),
    ],
)
def test_a_misspelt_key_or_a_wrong_type_is_named(tmp_path, old, new, message):
    assert old in local_text()
    path = write(tmp_path, local_text().replace(old, new, 1))
    assert error_of(path) == f"{path}: {message}"


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path, local_text().replace("  cooldown: 604800", "  cooldown: [604800", 1))
    assert error_of(path) == (
        f"{path}: line 8, column 3: not valid YAML: expected ',' or ']', but got '<scalar>'"
    )
    path = write(tmp_path, "markets:\n  ETH: {price: 1\n")
    assert (
        error_of(path)
        == f"{path}: line 3, column 1: not valid YAML: expected ',' or '}}', but got '<stream end>'"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"maintenance_margin": "0.12"},
            "initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.12)",
        ),
        ({"maintenance_margin": "0"}, "maintenance_margin must be > 0"),
        (
            {"initial_margin": "1.5"},
            "initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 1.5, maintenance_margin 0.05)",
        ),
        ({"keeper_reward": "0.06"}, "keeper_reward must be ≤ maintenance_margin (0.06 > 0.05)"),
        (
            {"keeper_reward": "0.03", "insurance_fee": "0.03"},
            "keeper_reward + insurance_fee must be ≤ maintenance_margin (0.06 > 0.05)",
        ),
        ({"maker_fee": "0.05"}, "maker_fee must be < maintenance_margin (0.05 ≥ 0.05)"),
        ({"taker_fee": "0.07"}, "taker_fee must be < maintenance_margin (0.07 ≥ 0.05)"),
        ({"price_band": "0"}, "price_band must be in (0, 1), got 0"),
        ({"price_band": "1"}, "price_band must be in (0, 1), got 1"),
        ({"heartbeat": 0}, "heartbeat must be > 0 and < 2^32 seconds, got 0"),
        ({"heartbeat": 2**32}, "heartbeat must be > 0 and < 2^32 seconds, got 4294967296"),
        ({"open_interest_cap": 0}, "open_interest_cap must be > 0 and < 2^127 WAD, got 0"),
        (
            {"open_interest_cap": 2**127},
            f"open_interest_cap must be > 0 and < 2^127 WAD, got {2**127}",
        ),
        ({"keeper_reward_cap": 0}, "keeper_reward_cap must be > 0 and < 2^128 WAD, got 0"),
        ({"keeper_reward_cap": 2**128}, f"keeper_reward_cap must be > 0 and < 2^128 WAD, got {2**128}"),
        ({"feed_decimals": 19}, "feed_decimals must be in 1..18, got 19"),
        ({"price": 0}, "price must be > 0"),
        ({"price": "2000.000000001"}, "price 2000.000000001 is not representable with the feed's 8 decimals"),
        (
            {"feed": "0x694AA1769357215DE4FAC081bf1f309aDC325306"},
            "price and feed_decimals are for a mock feed only (the feed is 0x694AA1769357215DE4FAC081bf1f309aDC325306)",
        ),
    ],
)
def test_every_market_bound_of_the_engine_is_checked_in_the_config(changes, message):
    import yaml

    raw = yaml.safe_load(local_text())
    raw["markets"]["ETH"].update(changes)
    with pytest.raises(ConfigError) as info:
        config_from_mapping(raw)
    assert str(info.value) == f"markets.ETH: {message}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"collateral_decimals": 0}, "collateral.decimals: must be in 1..18, got 0"),
        ({"collateral_decimals": 19}, "collateral.decimals: must be in 1..18, got 19"),
        ({"params_delay": 3599}, "roles.params_delay: seconds in [3600, 2592000] expected, got 3599"),
        (
            {"params_delay": 30 * 86_400 + 1},
            "roles.params_delay: seconds in [3600, 2592000] expected, got 2592001",
        ),
        ({"sequencer_grace_period": 2**96}, f"oracle.grace_period: must be < 2^96 seconds, got {2**96}"),
        ({"markets": ()}, "markets: at least one market is required"),
    ],
)
def test_every_suite_bound_is_checked(changes, message):
    config = replace(load_config(LOCAL), **changes)
    with pytest.raises(ConfigError) as info:
        check_suite(config)
    assert str(info.value) == message


def test_a_built_config_reports_every_broken_bound_at_once():
    local = load_config(LOCAL)
    eth = replace(local.markets[0], mm_ratio=WAD // 5, heartbeat=0)
    config = SuiteConfig(markets=(eth, eth), params_delay=60)
    assert market_problems(eth) == [
        "initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.2)",
        "heartbeat must be > 0 and < 2^32 seconds, got 0",
    ]
    with pytest.raises(ConfigError) as info:
        check_suite(config)
    assert str(info.value).splitlines() == [
        "markets.ETH: initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.2)",
        "markets.ETH: heartbeat must be > 0 and < 2^32 seconds, got 0",
        "markets.ETH: initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.2)",
        "markets.ETH: heartbeat must be > 0 and < 2^32 seconds, got 0",
        "markets: names must be unique, got ETH, ETH",
        "roles.params_delay: seconds in [3600, 2592000] expected, got 60",
    ]


def test_empty_sections_take_their_defaults():
    config = config_from_mapping(
        {
            "roles": None,
            "insurance": None,
            "markets": {
                "ETH": {
                    "price": 1,
                    "initial_margin": 0.1,
                    "maintenance_margin": 0.05,
                    "keeper_reward": 0,
                    "insurance_fee": 0,
                }
            },
        }
    )
    assert (config.params_delay, config.cooldown, config.fund_floor_tokens) == (172_800, 604_800, 0)
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"markets": {"ETH": None}})
    assert str(info.value) == "markets.ETH: a mapping of parameters expected, got None"


def _ape_deploy(config: Path) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).parent / "ape"
    return subprocess.run(
        [str(ape), "run", "deploy", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  cooldown: 604800",
            "  cooldown: [604800",
            "line 8, column 3: not valid YAML: expected ',' or ']', but got '<scalar>'",
        ),
        (
            "insurance:\n",
            "insurence:\n",
            "unknown key 'insurence'; allowed: collateral, insurance, markets, oracle, roles",
        ),
        (
            "    maintenance_margin: 0.05\n",
            "    maintenance_margin: 0.5\n",
            "markets.ETH: initial_margin must be > maintenance_margin and ≤ 1 (initial_margin 0.1, maintenance_margin 0.5)",
        ),
    ],
    ids=["yaml-error", "misspelt-key", "mm-above-im"],
)
def test_the_deploy_command_refuses_a_bad_config_before_connecting(tmp_path, old, new, message):
    """``ape run deploy`` checks the config while parsing its options, before Ape connects to (or
    starts) a node: one line on stderr, exit 2, no traceback, no manifest."""
    path = write(tmp_path, local_text().replace(old, new, 1))
    before = sorted((ROOT / "deployments").glob("*.json")) if (ROOT / "deployments").exists() else []
    result = _ape_deploy(path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"deploy: {path}: {message}"
    assert "Traceback" not in result.stdout + result.stderr
    assert "anvil" not in result.stdout.lower() + result.stderr.lower()
    after = sorted((ROOT / "deployments").glob("*.json")) if (ROOT / "deployments").exists() else []
    assert after == before
