"""Schema operations that differ between PostgreSQL and SQLite."""

from django.db import migrations

INDEX_NAME = "usage_event_occurred_at"


class CreateOccurredAtIndex(migrations.operations.base.Operation):
    """Index insights_usageevent.occurred_at: BRIN on PostgreSQL, B-tree elsewhere.

    Events arrive roughly in time order, so a BRIN index finds a time range
    (the CSV export, the rollup rebuild) for a few kilobytes in total, where
    a B-tree would add about 30 bytes to every event.
    """

    reversible = True

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        using = "USING brin " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(
            f"CREATE INDEX {INDEX_NAME} ON insights_usageevent {using}(occurred_at)"
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")

    def describe(self):
        return "Create the occurred_at index of insights_usageevent"
