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


class RowIdConverter:
    """Path converter `<id:name>`: a row id, so that a too large number is a 404.

    Django's `<int:...>` accepts any digits, and a number beyond 64 bits then
    fails in the database driver instead of matching no row.
    """

    regex = "[0-9]{1,19}"

    def to_python(self, value):
        row_id = parse_id(value)
        if row_id is None:
            raise ValueError(f"{value} is not a row id")
        return row_id

    def to_url(self, value):
        return str(value)
