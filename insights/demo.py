"""Demo traffic from the real public traces, loaded by `manage.py seed_demo`."""


def load_demo_traffic(demo, stdout):
    """Record usage for the demo workspace's keys from the bundled traces."""
    # TODO: the insights work fills this in.
