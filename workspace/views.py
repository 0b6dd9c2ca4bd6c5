from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from workspace.access import projects_for_user


@require_GET
@login_required
def home(request):
    """Send the user to the first project they belong to."""
    project = projects_for_user(request.user).first()
    if project is None:
        return render(request, "workspace/no_projects.html")
    return redirect("genai_apps:application-list", project_slug=project.slug)


@require_GET
@login_required
def switch_project(request):
    """Open the project picked in the switcher, keeping the user's section."""
    slug = request.GET.get("project", "")
    project = projects_for_user(request.user).filter(slug=slug).first()
    if project is None:
        return redirect("home")
    return redirect("genai_apps:application-list", project_slug=project.slug)


def placeholder(request, project_slug, **kwargs):
    # TODO: replaced by the real pages as each app lands.
    from workspace.access import get_membership

    get_membership(request, project_slug)
    return render(request, "base.html")
