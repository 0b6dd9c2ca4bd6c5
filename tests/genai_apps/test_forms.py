import pytest

from genai_apps.forms import ApplicationForm, AttachKeysForm
from genai_apps.services import delete_application
from tests.factories import (
    APIKeyFactory,
    GenAIApplicationFactory,
    KeyMappingFactory,
)


def application_form(project, name, description="", instance=None):
    return ApplicationForm(
        {"name": name, "description": description}, project=project, instance=instance
    )


def test_application_form_requires_name(project):
    form = application_form(project, "")

    assert not form.is_valid()
    assert form.errors["name"] == ["Enter a name for the application."]


def test_application_form_rejects_whitespace_only_name(project):
    form = application_form(project, "   ")

    assert not form.is_valid()
    assert form.errors["name"] == ["Enter a name for the application."]


def test_application_form_trims_name(project):
    form = application_form(project, "  Support Bot  ")

    assert form.is_valid()
    assert form.cleaned_data["name"] == "Support Bot"


def test_application_form_rejects_duplicate_name_in_other_case(project):
    GenAIApplicationFactory(project=project, name="Support Bot")

    form = application_form(project, "support bot")

    assert not form.is_valid()
    assert "“Support Bot” already exists" in form.errors["name"][0]


def test_application_form_allows_name_of_other_project(project, other_project):
    GenAIApplicationFactory(project=other_project, name="Support Bot")

    assert application_form(project, "Support Bot").is_valid()


def test_application_form_allows_name_of_deleted_application(project, owner):
    deleted = GenAIApplicationFactory(project=project, name="Support Bot")
    delete_application(deleted, owner)

    assert application_form(project, "Support Bot").is_valid()


def test_application_form_allows_own_name_on_edit(project):
    application = GenAIApplicationFactory(project=project, name="Support Bot")

    form = application_form(project, "SUPPORT BOT", instance=application)

    assert form.is_valid()


def test_application_form_rejects_256_character_name(project):
    form = application_form(project, "x" * 256)

    assert not form.is_valid()
    assert "at most 255 characters (it has 256)" in form.errors["name"][0]


def test_application_form_accepts_255_character_name(project):
    assert application_form(project, "x" * 255).is_valid()


def test_application_form_description_is_optional(project):
    form = application_form(project, "Support Bot", description="")

    assert form.is_valid()


def attach_form(application, key_ids):
    return AttachKeysForm({"keys": key_ids}, application=application)


def test_attach_form_accepts_unattached_active_key(project):
    application = GenAIApplicationFactory(project=project)
    key = APIKeyFactory(project=project)

    form = attach_form(application, [str(key.pk)])

    assert form.is_valid()
    assert form.cleaned_data["keys"] == [key]


def test_attach_form_requires_a_key(project):
    form = attach_form(GenAIApplicationFactory(project=project), [])

    assert form.errors["keys"] == ["Select at least one API key to attach."]


def test_attach_form_rejects_unknown_key_id(project):
    form = attach_form(GenAIApplicationFactory(project=project), ["999999"])

    assert form.errors["keys"] == ["API key id 999999 was not found in this project."]


def test_attach_form_rejects_non_numeric_key_id(project):
    form = attach_form(GenAIApplicationFactory(project=project), ["abc"])

    assert "“abc” is not a valid API key id" in form.errors["keys"][0]


def test_attach_form_rejects_key_of_other_project_like_missing_key(
    project, other_project
):
    foreign_key = APIKeyFactory(project=other_project)

    form = attach_form(GenAIApplicationFactory(project=project), [str(foreign_key.pk)])

    assert form.errors["keys"] == [
        f"API key id {foreign_key.pk} was not found in this project."
    ]


def test_attach_form_names_application_owning_key(project):
    owner_app = GenAIApplicationFactory(project=project, name="Docs Search")
    mapping = KeyMappingFactory(application=owner_app)

    form = attach_form(GenAIApplicationFactory(project=project), [str(mapping.key_id)])

    assert "already belongs to the application “Docs Search”" in form.errors["keys"][0]


@pytest.mark.parametrize(
    ("trait", "status"), [("revoked", "revoked"), ("expired", "expired")]
)
def test_attach_form_rejects_inactive_key(project, trait, status):
    key = APIKeyFactory(project=project, **{trait: True})

    form = attach_form(GenAIApplicationFactory(project=project), [str(key.pk)])

    assert f"is {status}; only active keys can be attached" in form.errors["keys"][0]


def test_attach_form_reports_every_rejected_key(project, other_project):
    revoked = APIKeyFactory(project=project, revoked=True)

    form = attach_form(
        GenAIApplicationFactory(project=project), ["999999", str(revoked.pk)]
    )

    assert len(form.errors["keys"]) == 2


@pytest.mark.parametrize(
    ("existing", "submitted"),
    [
        ("ÉCOLE", "école"),
        ("ǅ", "ǆ"),
        ("Straße", "STRASSE"),
        ("Café", "Cafe\u0301"),
        ("Support", "Support\u200b"),
    ],
)
def test_application_form_rejects_name_differing_in_unicode_case(
    project, existing, submitted
):
    GenAIApplicationFactory(project=project, name=existing)

    form = application_form(project, submitted)

    assert not form.is_valid()
    assert form.errors["name"] == [
        f"An application named “{existing}” already exists in this project "
        "(names are compared without regard to case). Choose another name."
    ]


def test_application_form_allows_own_name_in_other_case(project):
    application = GenAIApplicationFactory(project=project, name="école")

    form = application_form(project, "ÉCOLE", instance=application)

    assert form.is_valid()


@pytest.mark.parametrize(
    ("name", "code_points"),
    [
        ("\u200b", "U+200B"),
        ("\u200b\u2060\ufeff", "U+200B, U+2060, U+FEFF"),
        ("\u3164", "U+3164"),
        ("\u0301\u200d", "U+0301, U+200D"),
    ],
)
def test_application_form_rejects_invisible_name(project, name, code_points):
    form = application_form(project, name)

    assert not form.is_valid()
    assert form.errors["name"] == [
        f"The name contains only spaces or invisible characters ({code_points}). "
        "Enter a name with at least one visible letter, digit or symbol."
    ]


def test_application_form_accepts_name_with_joiner(project):
    form = application_form(project, "Team 👩\u200d💻")

    assert form.is_valid()


def test_application_form_names_field_with_null_character(project):
    form = application_form(project, "Support\x00Bot", description="a\x00b")

    assert not form.is_valid()
    assert form.errors["name"] == [
        "Name contains a null character (U+0000), which cannot be stored; remove it."
    ]
    assert form.errors["description"] == [
        "Description contains a null character (U+0000), which cannot be stored; "
        "remove it."
    ]
