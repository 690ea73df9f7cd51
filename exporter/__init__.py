"""usage-exporter: usage metrics of self-hosted platforms, read from their SQL databases."""

__version__ = "0.1.0"
