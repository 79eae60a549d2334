"""lamarena: static and interactive evaluation of Large Audio Models."""

__all__ = ["__version__"]

__version__ = "0.1.0"
