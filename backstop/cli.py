"""The ``backstop`` command (``pip install -e .`` puts it in the virtualenv): ``backstop risk ...``."""

from __future__ import annotations

import click

from backstop.risk.cli import risk


@click.group(help="Backstop's tools. The chain-side commands are `ape run deploy|keeper|populate|stress`.")
def main() -> None:
    pass


main.add_command(risk)

if __name__ == "__main__":
    main()
