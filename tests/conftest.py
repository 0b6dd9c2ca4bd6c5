import pytest

from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from workspace.models import Role


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2's deliberate slowness costs about half a second per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):
    return ProjectFactory(name="Acme", slug="acme")


@pytest.fixture
def owner(project):
    user = UserFactory(username="olivia")
    MembershipFactory(project=project, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def teammate(project):
    user = UserFactory(username="theo")
    MembershipFactory(project=project, user=user, role=Role.DEVELOPER)
    return user


@pytest.fixture
def viewer(project):
    user = UserFactory(username="vera")
    MembershipFactory(project=project, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def other_project(db):
    return ProjectFactory(name="Globex", slug="globex")


@pytest.fixture
def outsider(other_project):
    user = UserFactory(username="oscar")
    MembershipFactory(project=other_project, user=user, role=Role.OWNER)
    return user
