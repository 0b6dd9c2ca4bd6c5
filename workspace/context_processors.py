from workspace.access import projects_for_user


def current_project(request):
    """Expose the project switcher's choices and the current project."""
    if not request.user.is_authenticated:
        return {}
    return {
        "current_project": getattr(request, "project", None),
        "current_membership": getattr(request, "membership", None),
        "user_projects": projects_for_user(request.user),
    }
