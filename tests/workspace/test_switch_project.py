from django.urls import reverse

from tests.factories import MembershipFactory


def test_switch_project_keeps_section(client, project, other_project, owner):
    MembershipFactory(project=other_project, user=owner)
    client.force_login(owner)

    response = client.get(
        reverse("switch-project"), {"project": other_project.slug, "section": "keys"}
    )

    assert response["Location"] == reverse("workspace:key-list", args=["globex"])


def test_switch_project_ignores_unknown_section(client, project, other_project, owner):
    MembershipFactory(project=other_project, user=owner)
    client.force_login(owner)

    response = client.get(
        reverse("switch-project"), {"project": other_project.slug, "section": "evil"}
    )

    assert response["Location"] == reverse(
        "genai_apps:application-list", args=["globex"]
    )


def test_switch_project_rejects_project_of_others(
    client, project, other_project, owner
):
    client.force_login(owner)

    response = client.get(reverse("switch-project"), {"project": other_project.slug})

    assert response["Location"] == reverse("home")
