"""Never a new node where an existing one was meant (issue #17): the RPC a command is pointed at
must answer before Ape connects, or the command stops.

Ape's foundry provider, given a host (``APE_FOUNDRY_HOST`` or ``foundry.host`` in the config)
where nothing answers, starts an anvil of its own there: a deploy meant for a long-lived chain
would then deploy onto an empty one. :func:`explicit_rpc` names the URL a provider was pointed at
(None for ``host: auto``, which is Ape's throwaway local chain, and for providers that never start
a node); :func:`probe` asks it for ``eth_chainId``. :class:`NoNewNodeCommand` is Ape's
``ConnectedProviderCommand`` with that check before connecting.

On a fork network (``ethereum:mainnet-fork:foundry``) with ``host: auto`` the provider starts a
forking anvil of its own, legitimately; :func:`fork_upstream` names the RPC it will fork
(the upstream provider's URL), and the command refuses to start when nothing answers there or
the node there is another chain: a fork of a dead upstream would never start (Ape waits 20 s and
fails obscurely), and a fork of the wrong chain would rehearse against the wrong feeds. With an
explicit host on a fork network, the node there must report the upstream's chain id.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

import click
from ape.cli import ConnectedProviderCommand

#: anvil's default port, which Ape's foundry provider adds to a local host given without one.
DEFAULT_PORT = 8545
#: ape-foundry's providers: the local one and the forking one (the same ``host`` setting).
FOUNDRY_PROVIDERS = ("FoundryProvider", "FoundryForkProvider")


class NodeUnavailable(Exception):
    """Nothing (or no Ethereum node) answers at the RPC URL."""


def explicit_rpc(network: Any) -> str | None:
    """The URL the provider of ``network`` (an Ape ``NetworkAPI``, or a provider) was pointed at,
    normalized as Ape's foundry provider does, or None when it may start a throwaway node by
    design (``host: auto``) or is not the foundry provider. Connects to nothing."""
    provider = _provider(network)
    if type(provider).__name__ not in FOUNDRY_PROVIDERS:
        return None
    host = os.environ.get("APE_FOUNDRY_HOST") or getattr(getattr(provider, "settings", None), "host", None)
    if host in (None, "", "auto"):
        return None
    local = "127.0.0.1" in host or "localhost" in host
    if not host.startswith("http"):
        host = f"http://{host}" if local else f"https://{host}"
    if local and ":" not in host.split("//", 1)[1]:
        host = f"{host}:{DEFAULT_PORT}"
    return host


def _provider(network: Any) -> Any:
    return network.get_provider() if hasattr(network, "get_provider") else network


def hide_secrets(url: str) -> str:
    """``url`` without credentials or a path (hosted RPC URLs carry API keys in both)."""
    from ape.logging import sanitize_url

    return sanitize_url(url) if url.startswith(("http://", "https://", "ws://", "wss://")) else url


def fork_upstream(network: Any) -> tuple[str, str, int] | None:
    """``(URL, upstream network choice, its chain id)`` of the RPC the forking provider of
    ``network`` forks, or None when it is not ape-foundry's fork provider. Connects to nothing.
    :class:`NodeUnavailable` when no upstream RPC is configured (an unset ``$VARIABLE`` in
    ``ape-config.yaml`` is named), so Ape never falls back to a random public RPC."""
    provider = _provider(network)
    if type(provider).__name__ != "FoundryForkProvider":
        return None
    forked = provider.network
    upstream_network = forked.upstream_network
    choice = f"{upstream_network.ecosystem.name}:{upstream_network.name}"
    key = f"node.{upstream_network.ecosystem.name}.{upstream_network.name}.uri"
    if upstream_network.ecosystem.name == "ethereum" and upstream_network.name in ("mainnet", "sepolia"):
        key = f"BACKSTOP_{upstream_network.name.upper()}_RPC"
    hint = (
        f"set {key} to the URL of an {choice} node, or name an Ape provider in "
        f"foundry.fork.{upstream_network.ecosystem.name}.{upstream_network.name}.upstream_provider"
    )
    try:
        upstream = forked.upstream_provider
        configured = (
            getattr(upstream, "_configured_rpc", None) if hasattr(type(upstream), "_configured_rpc") else True
        )
        if not configured:
            raise NodeUnavailable(f"no RPC configured for the upstream {choice} ({upstream.name}); {hint}")
        url = upstream.connection_str
    except NodeUnavailable:
        raise
    except Exception as err:  # Ape's ConfigError / ProviderError: one line, with the hint
        message = str(err)
        if unset := re.search(r"\$\{?(\w+)\}?", message):
            message = f"{unset.group(1)} is not set"
        raise NodeUnavailable(f"the upstream {choice} has no usable RPC ({message}); {hint}") from err
    if not url:
        raise NodeUnavailable(f"the upstream {choice} ({upstream.name}) has no URL; {hint}")
    return url, choice, int(upstream_network.chain_id)


def probe(url: str, timeout: float = 5.0) -> int:
    """The chain id the node at ``url`` reports; :class:`NodeUnavailable` if nothing answers, or
    the answer is not a JSON-RPC ``eth_chainId`` result."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        return int(answer["result"], 16)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise NodeUnavailable(f"no node answers at {url} ({reason})") from err
    except (ValueError, KeyError, TypeError) as err:
        raise NodeUnavailable(f"{url} does not answer eth_chainId like an Ethereum node ({err})") from err


class NoNewNodeCommand(ConnectedProviderCommand):
    """``ConnectedProviderCommand`` that first checks the RPC the provider was pointed at: if
    nothing answers there, it prints ``<command>: <why>; refusing to start a node in its place``
    and exits 1, before Ape could start one."""

    def invoke(self, ctx: click.Context) -> Any:
        # Ape passes the choice as `network` (a NetworkAPI) or `provider` (a ProviderAPI),
        # whichever the command's function takes.
        network = ctx.params.get("network") or ctx.params.get("provider")
        name = ctx.info_name or self.name
        url = explicit_rpc(network)
        chain_id = None
        if url is not None:
            try:
                chain_id = probe(url)
            except NodeUnavailable as err:
                click.echo(
                    f"{name}: {err}; refusing to start a node in its place (start it, or unset "
                    "APE_FOUNDRY_HOST / foundry.host for a throwaway local chain)",
                    err=True,
                )
                ctx.exit(1)
        if type(_provider(network)).__name__ == "FoundryForkProvider":
            # With host auto Ape starts an anvil forking the upstream; with a host it connects
            # there and to the upstream as well (it compares genesis blocks): either way the
            # upstream must answer, as the chain the fork network names.
            problem = self._upstream_problem(network, url, chain_id)
            if problem:
                click.echo(f"{name}: {problem}", err=True)
                ctx.exit(1)
        return super().invoke(ctx)

    @staticmethod
    def _upstream_problem(network: Any, host: str | None, host_chain_id: int | None) -> str | None:
        """Why the fork network's upstream (or the node at ``host``) cannot serve as the fork, or None."""
        fork_name = getattr(_provider(network).network, "name", "fork")
        what, after = (
            ("cannot fork", "; no fork started") if host is None else (f"cannot use {fork_name}", "")
        )
        try:
            url, choice, expected = fork_upstream(network)  # type: ignore[misc]
            chain_id = probe(url)
        except NodeUnavailable as err:
            message = str(err)
            if "url" in locals():
                message = message.replace(url, hide_secrets(url))
            return f"{what}: {message}{after}"
        if chain_id != expected:
            return (
                f"{what}: the upstream at {hide_secrets(url)} reports chain {chain_id}, "
                f"but {fork_name} forks {choice} (chain {expected}){after}"
            )
        if host is not None and host_chain_id != expected:
            return f"the node at {hide_secrets(host)} reports chain {host_chain_id}, not {expected}: it is not a fork of {choice}"
        return None
