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


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, tmp_path_factory):
    """Keep a SQLite test database in a file instead of memory.

    Gateway tests start real server processes that must open the same test
    database; PostgreSQL test databases need no change.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    test_settings = database.setdefault("TEST", {})
    if database["ENGINE"].endswith("sqlite3") and not test_settings.get("NAME"):
        test_settings["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")
