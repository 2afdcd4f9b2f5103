"""lf-bulk: bulk management of Linksfield SIM bundle groups."""

__version__ = "0.1.0"
