"""Row ids taken from URLs and forms.

Every primary key is a 64-bit signed integer. A larger number in a query
string or form field can never match a row, and SQLite refuses to bind it
(OverflowError). Such ids are therefore treated as unknown before any query.
"""

MAX_ID = 2**63 - 1


def parse_id(raw):
    """Return raw as a row id, or None if it is not a whole number in range."""
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
