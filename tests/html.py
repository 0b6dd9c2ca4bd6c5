"""Helpers that read rendered django-tables2 tables."""

import html
import re

from django.http import QueryDict

HEADER_LINK = re.compile(r'<th [^>]*>\s*<a href="\?([^"]*)">([^<]+)</a>')


def sort_links(content, field="sort"):
    """Return {column header: value of field in its link} for the header
    links that set field, so each table of a page is read by its own prefix.
    """
    text = content.decode() if isinstance(content, bytes) else content
    links = {}
    for query, header in HEADER_LINK.findall(text):
        value = QueryDict(html.unescape(query)).get(field)
        if value is not None:
            links[html.unescape(header).strip()] = value
    return links
