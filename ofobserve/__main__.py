"""``python -m ofobserve``: the same as the ``ofobserve`` command."""

from ofobserve.extras import main

main()
