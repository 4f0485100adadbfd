"""The ``flotilla`` command: run one node's stack, and look at it over the bus."""
