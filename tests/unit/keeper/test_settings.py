"""The keeper's settings: defaults < YAML file < BACKSTOP_KEEPER_* variables < flags, and every
bad key named with its source (backstop.keeper.settings)."""

from __future__ import annotations

import pytest

from backstop.keeper.settings import KeeperSettings, KeeperSettingsError, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "keeper.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_ones():
    s = load_settings(None, {}, {})
    assert s == KeeperSettings()
    assert (s.batch_size, s.poll_interval, s.max_in_flight, s.gas_budget) == (500, 1.0, 8, 5_000_000)
    assert (s.buffer, s.min_step, s.min_buffer, s.max_inherit_notional) == (0.1, 1.0, 0.2, None)
    assert (s.max_fee_gwei, s.priority_fee_gwei, s.reprice_after) == (None, None, 12.0)
    assert (s.metrics_port, s.metrics_host, s.max_head_age, s.log_format) == (
        None,
        "127.0.0.1",
        120.0,
        "text",
    )
    assert s.rpc_urls == []
    assert s.max_backoff == 5.0


def test_flags_override_the_environment_which_overrides_the_file(tmp_path):
    path = write(
        tmp_path,
        "rpc_urls: [http://a:8545, http://b:8545]\nmax-fee-gwei: 30\nbatch_size: 100\nlog_format: json\n",
    )
    env = {"BACKSTOP_KEEPER_MAX_FEE_GWEI": "40", "BACKSTOP_KEEPER_METRICS_PORT": "9464", "HOME": "/x"}
    s = load_settings(path, env, {"max_fee_gwei": 50.0})
    assert s.rpc_urls == ["http://a:8545", "http://b:8545"]
    assert s.max_fee_gwei == 50.0  # flag > env (40) > file (30)
    assert s.metrics_port == 9464  # env, as a number
    assert s.batch_size == 100 and s.log_format == "json"  # file
    assert load_settings(path, env, {}).max_fee_gwei == 40.0
    assert load_settings(path, {}, {}).max_fee_gwei == 30.0


def test_the_config_file_may_come_from_the_environment(tmp_path):
    path = write(tmp_path, "priority_fee_gwei: 2\n")
    env = {"BACKSTOP_KEEPER_CONFIG": str(path), "BACKSTOP_KEEPER_RPC_URLS": "http://x:1, http://y:2"}
    s = load_settings(None, env, {})
    assert s.priority_fee_gwei == 2.0
    assert s.rpc_urls == ["http://x:1", "http://y:2"]


@pytest.mark.parametrize(
    ("text", "env", "flags", "message"),
    [
        ("max_fee: 30\n", {}, {}, "keeper.yaml: unknown key 'max_fee'; allowed: account, batch_size"),
        ("max_fee_gwei: -1\n", {}, {}, "keeper.yaml: max_fee_gwei: must be > 0, got -1"),
        (
            "",
            {"BACKSTOP_KEEPER_BATCH_SIZE": "many"},
            {},
            "BACKSTOP_KEEPER_BATCH_SIZE: a whole number expected, got 'many'",
        ),
        (
            "",
            {"BACKSTOP_KEEPER_LOG_FORMAT": "xml"},
            {},
            "BACKSTOP_KEEPER_LOG_FORMAT: one of 'text' or 'json' expected",
        ),
        ("", {"BACKSTOP_KEEPER_MAXFEE": "1"}, {}, "BACKSTOP_KEEPER_MAXFEE: unknown key 'maxfee'"),
        ("", {}, {"metrics_port": 70_000}, "--metrics-port: must be ≤ 65535, got 70000"),
        ("max_backoff: 0\n", {}, {}, "keeper.yaml: max_backoff: must be > 0, got 0"),
        ("", {}, {"rpc_urls": ["ws://a"]}, "--rpc-urls: an http(s) URL expected, got 'ws://a'"),
        ("rpc_urls: [http://a, http://a]\n", {}, {}, "keeper.yaml: rpc_urls: a URL is listed twice"),
        ("- 1\n", {}, {}, "keeper.yaml: a mapping of settings expected, got list"),
        ("", {}, {"max_fee_gwei": 1e-12}, "--max-fee-gwei: not a gwei amount of whole wei ≥ 0: 1e-12"),
        ("a: [\n", {}, {}, "keeper.yaml: not valid YAML"),
    ],
)
def test_a_bad_setting_names_the_key_and_its_source(tmp_path, text, env, flags, message):
    path = write(tmp_path, text)
    with pytest.raises(KeeperSettingsError) as err:
        load_settings(path, env, flags)
    assert message in str(err.value)


def test_every_bad_key_is_listed_at_once(tmp_path):
    path = write(tmp_path, "batch_size: 0\nmin_buffer: 101\n")
    with pytest.raises(KeeperSettingsError) as err:
        load_settings(path, {}, {})
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}: batch_size: must be ≥ 1, got 0",
        f"{path}: min_buffer: must be ≤ 100, got 101",
    ]


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(KeeperSettingsError, match=r"missing\.yaml: cannot read the keeper config"):
        load_settings(tmp_path / "missing.yaml", {}, {})
