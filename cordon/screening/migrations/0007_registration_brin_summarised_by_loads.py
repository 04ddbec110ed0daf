"""The registration time index no longer asks autovacuum to summarise each block range as it fills. A city file
fills thousands of ranges in minutes: autovacuum's request queue overflows and the server log gets a line and
the whole statement for every request it drops (8,000 of them in a ten-million-swab round). The file engine
summarises what it added when a file is done, and autovacuum summarises the rest when it vacuums the table;
a range not yet summarised is only read in full, never missed."""

from django.db import migrations


def _autosummarize(value: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER INDEX IF EXISTS reg_collected_brin SET (autosummarize = {value})")

    return run


class Migration(migrations.Migration):
    dependencies = [("screening", "0006_lean_result_versions")]

    operations = [migrations.RunPython(_autosummarize("off"), _autosummarize("on"))]
