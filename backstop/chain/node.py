"""Never a new node where an existing one was meant (issue #17): the RPC a command is pointed at
must answer before Ape connects, or the command stops.

Ape's foundry provider, given a host (``APE_FOUNDRY_HOST`` or ``foundry.host`` in the config)
where nothing answers, starts an anvil of its own there: a deploy meant for a long-lived chain
would then deploy onto an empty one. :func:`explicit_rpc` names the URL a provider was pointed at
(None for ``host: auto``, which is Ape's throwaway local chain, and for providers that never start
a node); :func:`probe` asks it for ``eth_chainId``. :class:`NoNewNodeCommand` is Ape's
``ConnectedProviderCommand`` with that check before connecting.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import click
from ape.cli import ConnectedProviderCommand

#: anvil's default port, which Ape's foundry provider adds to a local host given without one.
DEFAULT_PORT = 8545


class NodeUnavailable(Exception):
    """Nothing (or no Ethereum node) answers at the RPC URL."""


def explicit_rpc(network: Any) -> str | None:
    """The URL the provider of ``network`` (an Ape ``NetworkAPI``, or a provider) was pointed at,
    normalized as Ape's foundry provider does, or None when it may start a throwaway node by
    design (``host: auto``) or is not the foundry provider. Connects to nothing."""
    provider = network.get_provider() if hasattr(network, "get_provider") else network
    if type(provider).__name__ != "FoundryProvider":
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
        url = explicit_rpc(ctx.params.get("network") or ctx.params.get("provider"))
        if url is not None:
            try:
                probe(url)
            except NodeUnavailable as err:
                click.echo(
                    f"{ctx.info_name or self.name}: {err}; refusing to start a node in its place (start it, or unset "
                    "APE_FOUNDRY_HOST / foundry.host for a throwaway local chain)",
                    err=True,
                )
                ctx.exit(1)
        return super().invoke(ctx)
