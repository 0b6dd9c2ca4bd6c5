import html.parser

import pytest

from tests.factories import MembershipFactory, UserFactory
from workspace.models import Role


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def platform_admin(project):
    """A staff user who is an admin of Acme only."""
    user = UserFactory(username="pat", is_staff=True)
    MembershipFactory(project=project, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def super_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


class _FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.data = {}
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") == "checkbox":
                if "checked" in attrs:
                    self.data[name] = attrs.get("value", "on")
            else:
                self.data[name] = attrs.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data.lstrip("\n")


def form_data(response):
    """Return the values a browser would submit from an admin change form."""
    parser = _FormParser()
    parser.feed(response.content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


@pytest.fixture
def staff_client_other(platform_admin):
    """A second client logged in as the scoped staff user."""
    from django.test import Client

    client = Client()
    client.force_login(platform_admin)
    return client
