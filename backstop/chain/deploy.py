"""Deploys and wires a Backstop suite from a :class:`~backstop.config.SuiteConfig`.

The deployment sequence (which contracts, their constructor arguments, the role grant, the wiring
calls, the markets) is written once, in :func:`deploy_sequence`, against a small :class:`Deployer`
protocol. Two adapters run it:

- :class:`ApeDeployer`: Ape's project containers, so any Ape network works (``ape run deploy``,
  the stress runner, the tests, the bench: :func:`deploy_suite`);
- :class:`EvmDeployer`: a raw :class:`~backstop.chain.evm.Backend` (pyrevm or JSON-RPC) and the
  compiled artifacts, for the fuzz world.

On a local chain ``feed: mock`` and ``collateral.token: mock`` deploy test doubles; on a testnet,
give real addresses. The manifest, reuse and verification are :mod:`backstop.chain.manifest`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_abi import decode, encode

from backstop.chain.abi import Artifacts, canonical, error_name, error_names, selector, signature
from backstop.chain.evm import Backend, Revert
from backstop.config import MOCK, ConfigError, SuiteConfig
from backstop.units import WAD

log = logging.getLogger("backstop.deploy")

ORACLE_ADMIN_ROLE_NAME = "ORACLE_ADMIN_ROLE"
#: Name and symbol of the mock collateral token.
MOCK_TOKEN = ("Backstop USD", "bUSD")


@dataclass
class Deployment:
    """Contract handles of a deployed suite (the adapter's kind: Ape instances or addresses)."""

    chain_id: int
    token: Any
    oracle: Any
    vault: Any
    fund: Any
    engine: Any
    feeds: dict[str, Any] = field(default_factory=dict)
    market_ids: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)
    #: Creation transaction hash of each labelled contract (hex).
    txs: dict[str, str] = field(default_factory=dict)
    #: Constructor arguments of each labelled contract, by parameter name (JSON-able).
    constructor_args: dict[str, dict[str, Any]] = field(default_factory=dict)


class Deployer(Protocol):
    """What the deployment sequence needs from a chain. Contract handles are the adapter's own."""

    #: The sending account: it deploys, and is the suite's admin.
    admin: str
    chain_id: int
    #: Creation block of each labelled contract (where log scans can start).
    blocks: dict[str, int]

    def deploy(self, contract: str, *args: Any, label: str | None = None) -> Any:
        """Deploys contract type ``contract`` with constructor ``args``; a ``label`` records its block."""
        ...

    def at(self, contract: str, address: str) -> Any:
        """A handle on an existing ``contract`` at ``address``."""
        ...

    def transact(self, handle: Any, function: str, *args: Any) -> Any:
        """Sends ``function(args)`` from :attr:`admin`; raises if it reverts."""
        ...

    def read(self, handle: Any, function: str, *args: Any) -> Any:
        """The value of view ``function(args)``."""
        ...

    def address(self, handle: Any) -> str: ...


def deploy_sequence(
    deployer: Deployer, config: SuiteConfig, *, token: tuple[str, str] = MOCK_TOKEN
) -> Deployment:
    """Deploys and wires a fresh suite, then lists the config's markets: token (mock, or the
    configured ERC-20) → OracleAdapter → CollateralVault → InsuranceFund → MarginEngine (with the
    configured guardian and ``PARAMS_DELAY``), the engine made the adapter's only oracle admin, the
    sequencer feed, the deployer's adapter roles renounced, ``fund.wire``, ``vault.wire``, the
    markets, then the engine's admin role handed to ``roles.admin``."""
    d = deployer
    admin = d.admin
    if config.collateral_token == MOCK:
        collateral = d.deploy("MockERC20", *token, config.collateral_decimals, label="CollateralToken")
    else:
        collateral = d.at("MockERC20", config.collateral_token)  # any ERC-20 ABI will do for reads
    oracle = d.deploy("OracleAdapter", admin, label="OracleAdapter")
    vault = d.deploy("CollateralVault", d.address(collateral), label="CollateralVault")
    fund = d.deploy(
        "InsuranceFund",
        d.address(collateral),
        config.cooldown,
        config.window,
        config.fund_floor_tokens,
        config.fund_per_event_cap_tokens,
        label="InsuranceFund",
    )
    # The deployer is the engine's admin until the markets are listed (then ``hand_over``); the
    # guardian is the configured one from the start.
    engine = d.deploy(
        "MarginEngine",
        d.address(vault),
        d.address(oracle),
        d.address(fund),
        admin,
        config.guardian or admin,
        config.params_delay,
        label="MarginEngine",
    )
    oracle_admin = d.read(oracle, ORACLE_ADMIN_ROLE_NAME)
    d.transact(oracle, "grantRole", oracle_admin, d.address(engine))
    if config.sequencer_feed:
        d.transact(oracle, "setSequencerFeed", config.sequencer_feed, config.sequencer_grace_period)
    # From here on the adapter's feeds and sequencer change only through the engine's timelock:
    # the deployer gives up both of its roles there, and nobody is left who could grant them.
    d.transact(oracle, "renounceRole", oracle_admin, admin)
    d.transact(oracle, "renounceRole", d.read(oracle, "DEFAULT_ADMIN_ROLE"), admin)
    d.transact(fund, "wire", d.address(engine), d.address(vault))
    d.transact(vault, "wire", d.address(engine), d.address(fund))
    deployment = Deployment(
        d.chain_id,
        collateral,
        oracle,
        vault,
        fund,
        engine,
        blocks=d.blocks,
        txs=getattr(d, "txs", {}),
        constructor_args=getattr(d, "constructor_args", {}),
    )
    add_markets(deployer, config, deployment)
    hand_over(deployer, config, deployment)
    return deployment


def add_markets(deployer: Deployer, config: SuiteConfig, deployment: Deployment) -> list[str]:
    """Lists the config's markets that the engine does not have yet, in config order (a mock feed
    first deployed for each that asks for one); returns their names."""
    d = deployer
    added = []
    for market in config.markets:
        if market.name in deployment.market_ids:
            continue
        if market.feed == MOCK:
            answer = market.mock_price * 10**market.mock_feed_decimals // WAD
            feed = d.deploy("MockAggregator", market.mock_feed_decimals, answer, f"{market.name} / USD")
        else:
            feed = d.at("MockAggregator", market.feed)
        expected_id = d.read(deployment.engine, "marketCount")
        d.transact(deployment.engine, "addMarket", market.params_tuple(d.address(feed)))
        deployment.feeds[market.name] = feed
        deployment.market_ids[market.name] = expected_id
        added.append(market.name)
        log.info("market added name=%s id=%s feed=%s", market.name, expected_id, d.address(feed))
    return added


def hand_over(deployer: Deployer, config: SuiteConfig, deployment: Deployment) -> None:
    """Gives the engine's admin role to ``roles.admin`` and drops the deployer's, when they differ.
    Afterwards only ``roles.admin`` can list markets or schedule changes."""
    d = deployer
    if not config.admin or config.admin.lower() == d.admin.lower():
        return
    role = d.read(deployment.engine, "DEFAULT_ADMIN_ROLE")
    d.transact(deployment.engine, "grantRole", role, config.admin)
    d.transact(deployment.engine, "renounceRole", role, d.admin)
    log.info("engine admin handed over to=%s", config.admin)


# --- Ape ---------------------------------------------------------------------------------------------------


class ApeDeployer:
    """:class:`Deployer` over Ape's project containers, sending from ``sender``."""

    def __init__(self, project: Any, chain: Any, sender: Any) -> None:
        self.project = project
        self.sender = sender
        self.admin = sender.address
        self.chain_id = chain.chain_id
        self.blocks: dict[str, int] = {}
        self.txs: dict[str, str] = {}
        self.constructor_args: dict[str, dict[str, Any]] = {}

    def deploy(self, contract: str, *args: Any, label: str | None = None) -> Any:
        container = getattr(self.project, contract)
        instance = container.deploy(*args, sender=self.sender)
        if label is not None:
            # The creation block: where log scans (the keeper's cursor) can start.
            receipt = instance.chain_manager.provider.get_receipt(instance.txn_hash)
            self.blocks[label] = receipt.block_number
            self.txs[label] = _hex(instance.txn_hash)
            names = [p.name for p in container.contract_type.constructor.inputs]
            self.constructor_args[label] = {
                n: (str(a) if not isinstance(a, int) else a) for n, a in zip(names, args, strict=True)
            }
            log.info(
                "deploy contract=%s address=%s block=%s tx=%s",
                label,
                instance.address,
                self.blocks[label],
                self.txs[label],
            )
        return instance

    def at(self, contract: str, address: str) -> Any:
        return getattr(self.project, contract).at(address)

    def transact(self, handle: Any, function: str, *args: Any) -> Any:
        return getattr(handle, function)(*args, sender=self.sender)

    def read(self, handle: Any, function: str, *args: Any) -> Any:
        return getattr(handle, function)(*args)

    def address(self, handle: Any) -> str:
        return handle.address


def deploy_suite(project: Any, chain: Any, sender: Any, config: SuiteConfig, *, local: bool) -> Deployment:
    """Deploys and wires a fresh suite with Ape. Mocks (token, feeds) only when ``local``."""
    if config.uses_mocks and not local:
        raise ConfigError("mock token or feeds requested on a non-local network: give real addresses")
    return deploy_sequence(ApeDeployer(project, chain, sender), config)


def add_missing_markets(project: Any, sender: Any, config: SuiteConfig, deployment: Deployment) -> list[str]:
    """:func:`add_markets` with Ape, on a suite deployed (or reloaded) with Ape."""
    return add_markets(ApeDeployer(project, sender.chain_manager, sender), config, deployment)


def _hex(value: Any) -> str:
    """A transaction hash as ``0x`` hex, whatever the client returned (bytes, HexBytes or str)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text if text.startswith("0x") else "0x" + text


# --- a raw EVM backend -------------------------------------------------------------------------------------


class EvmDeployer:
    """:class:`Deployer` over a :class:`~backstop.chain.evm.Backend`: handles are addresses, calls
    are ABI-encoded from the compiled artifacts, every transaction is sent by ``sender``."""

    def __init__(self, backend: Backend, artifacts: Artifacts, sender: str) -> None:
        self.backend = backend
        self.artifacts = artifacts
        self.admin = sender
        self.chain_id = backend.chain_id
        self.blocks: dict[str, int] = {}
        self._types: dict[str, str] = {}  # address (lower case) -> contract type
        self._errors = error_names(
            (self.artifacts.abi(name) for name in self.artifacts.contract_types), standard=True
        )

    def deploy(self, contract: str, *args: Any, label: str | None = None) -> str:
        address = self.backend.deploy(self.admin, self.artifacts.initcode(contract, None, *args))
        self._types[address.lower()] = contract
        return address

    def at(self, contract: str, address: str) -> str:
        self._types[address.lower()] = contract
        return address

    def _function(self, handle: str, function: str, args: tuple[Any, ...]) -> tuple[dict[str, Any], bytes]:
        abi = self.artifacts.abi(self._types[handle.lower()])
        item = next(
            i
            for i in abi
            if i.get("type") == "function" and i["name"] == function and len(i["inputs"]) == len(args)
        )
        types = [canonical(p) for p in item["inputs"]]
        return item, selector(signature(item)) + (encode(types, list(args)) if types else b"")

    def transact(self, handle: str, function: str, *args: Any) -> Any:
        _, data = self._function(handle, function, args)
        out = self.backend.transact(self.admin, handle, data)
        if isinstance(out, Revert):
            raise RuntimeError(f"setup call {function} reverted: {error_name(out.data, self._errors)}")
        return out

    def read(self, handle: str, function: str, *args: Any) -> Any:
        item, data = self._function(handle, function, args)
        values = decode([canonical(p) for p in item["outputs"]], self.backend.view(self.admin, handle, data))
        return values[0] if len(values) == 1 else values

    def address(self, handle: str) -> str:
        return handle
