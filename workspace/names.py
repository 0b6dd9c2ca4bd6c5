"""Rules for the names of applications, keys, providers and proxies.

Names are compared with `name_key`, in Python, because SQLite's LOWER()
folds only ASCII letters: "ÉCOLE" and "école" would both pass a Lower()
lookup there. The Lower() database constraints stay as a second line of
defence against concurrent saves.
"""

import unicodedata

from django.core.exceptions import ValidationError

# Characters that render as blank space although Unicode classes them as
# letters or symbols: the Hangul fillers and the blank Braille pattern.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Separators, controls, format characters (U+200B and the like), surrogates,
# private-use and unassigned code points, and combining marks, which show
# nothing without a base character.
INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"})
COMBINING_CATEGORIES = frozenset({"Mn", "Me"})


def is_visible(character):
    if character in BLANK_LETTERS:
        return False
    category = unicodedata.category(character)
    return category not in INVISIBLE_CATEGORIES | COMBINING_CATEGORIES


def validate_visible_name(name):
    """Reject a name that has no visible character, like a lone U+200B."""
    if not name or any(is_visible(character) for character in name):
        return
    code_points = ", ".join(dict.fromkeys(f"U+{ord(c):04X}" for c in name))
    raise ValidationError(
        "The name contains only spaces or invisible characters (%(code_points)s). "
        "Enter a name with at least one visible letter, digit or symbol.",
        code="invisible_name",
        params={"code_points": code_points},
    )


def name_key(name):
    """Return the form of a name that the uniqueness checks compare.

    NFKC and casefold() make "ÉCOLE", "école" and "ｅcole" equal, and "ǅ"
    equal to "ǆ". Format characters such as U+200B are dropped, because
    "Support\u200b" looks exactly like "Support".
    """
    folded = unicodedata.normalize(
        "NFKC", unicodedata.normalize("NFKC", name).casefold()
    )
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def find_same_name(queryset, name, exclude=None):
    """Return the row of queryset whose name equals name by `name_key`, or None.

    The database cannot compute name_key, so this loads every name of the
    queryset. Callers scope it to one project.
    """
    if exclude is not None and exclude.pk:
        queryset = queryset.exclude(pk=exclude.pk)
    expected_key = name_key(name)
    for row in queryset.only("pk", "name").order_by("pk").iterator():
        if name_key(row.name) == expected_key:
            return row
    return None
