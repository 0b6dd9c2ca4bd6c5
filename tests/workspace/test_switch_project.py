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


def test_project_root_opens_applications(client, project, owner, outsider):
    client.force_login(owner)
    response = client.get(f"/p/{project.slug}/")
    client.force_login(outsider)
    outsider_response = client.get(f"/p/{project.slug}/")

    assert response.status_code == 302
    assert response.url == f"/p/{project.slug}/applications/"
    assert outsider_response.status_code == 404
