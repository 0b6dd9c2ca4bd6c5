"""The demo workspace that `manage.py seed_demo` loads for `make run`."""

import dataclasses


@dataclasses.dataclass
class DemoWorkspace:
    project: object
    # username -> (User, password)
    users: dict
    providers: list
    proxies: list
    keys: list
    applications: list


def create_demo_workspace(stdout):
    """Create the demo project, users, providers, proxies, keys and apps.

    Returns a DemoWorkspace. Safe to call on an empty database only; the
    seed_demo command checks that first.
    """
    # TODO: the foundation UI work fills this in.
    raise NotImplementedError
