"""Template tags for the paginated tables."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def missing_page_requested(context, table):
    """Return True if the URL requests a page other than the one shown.

    Tables fall back to the last page when the requested one is past the
    end, so the page says which page it shows instead.
    """
    request = context.get("request")
    page = getattr(table, "page", None)
    if request is None or page is None:
        return False
    requested = request.GET.get(table.prefixed_page_field)
    return bool(requested) and requested != str(page.number)
