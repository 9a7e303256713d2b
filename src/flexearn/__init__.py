"""flexearn: a self-hosted Simple Earn (flexible savings) engine."""

__version__ = "0.1.0"
