"""hetsched: run one detection network on every processing element of a board at once."""

__version__ = "0.1.0"
