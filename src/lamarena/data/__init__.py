"""Files shipped with lamarena: the spoken probe used by `lamarena models check`."""

__all__: list[str] = []
