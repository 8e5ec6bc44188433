"""``python -m ofobserve``: the same as the ``ofobserve`` command."""

from ofobserve.cli import main

main()
