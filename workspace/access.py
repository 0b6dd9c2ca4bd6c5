"""Project access checks shared by every view.

An outsider gets 404 for anything in a project, so the existence of other
projects' objects is never revealed; a member whose role may not make a
change gets 403.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from workspace.models import Membership


def get_membership(request, project_slug):
    """Return the user's membership in the project, or raise Http404."""
    if not request.user.is_authenticated:
        raise Http404("Project not found.")
    membership = (
        Membership.objects.select_related("project")
        .filter(user=request.user, project__slug=project_slug)
        .first()
    )
    if membership is None:
        raise Http404("Project not found.")
    request.membership = membership
    request.project = membership.project
    return membership


def require_editor(membership):
    if not membership.can_edit:
        raise PermissionDenied("Viewers can read this project but not change it.")


def projects_for_user(user):
    from workspace.models import Project

    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).order_by("name")


def require_manager(membership, reason):
    """Raise 403 unless the member is an owner or admin of the project."""
    if not membership.can_manage:
        raise PermissionDenied(reason)
