import click


@click.group()
def cli() -> None:
    """Bulk management of Linksfield SIM bundle groups."""


def main() -> None:
    cli()
