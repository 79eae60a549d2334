"""``python -m lamarena``: the same as the ``lamarena`` command."""

from lamarena.cli import main

main()
