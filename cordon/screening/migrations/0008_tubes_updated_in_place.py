"""A result updates its tube in place. A round's results set the result, lab and times of a million tubes; with
the result and lab indexed, and the tube's page full, every update wrote a new entry into each of the tube's six
indexes (2.5 times the cost of the update itself). Now no index covers what a result sets: the campaign index
no longer carries the result (positive pools are found through TubeResult's partial index of positive versions),
the lab key has no index (turnaround reads a campaign's tubes by campaign), and on PostgreSQL the tube table
keeps half of each page free, room for each tube's next version. The update is then a heap-only tuple."""

import django.db.models.deletion
from django.db import migrations, models

_FILLFACTOR = 50


def _fillfactor(value: int | None):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            if value is None:
                schema_editor.execute("ALTER TABLE screening_tube RESET (fillfactor)")
            else:
                schema_editor.execute(f"ALTER TABLE screening_tube SET (fillfactor = {value})")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("regions", "0001_initial"),
        ("screening", "0007_registration_brin_summarised_by_loads"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="tube", name="tube_campaign_result_idx"),
        migrations.AlterField(
            model_name="tube",
            name="lab",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="tubes",
                                    to="screening.lab"),  # fmt: skip
        ),
        migrations.AddIndex(model_name="tube", index=models.Index(fields=["campaign"], name="tube_campaign_idx")),
        migrations.AddIndex(
            model_name="tuberesult",
            index=models.Index(condition=models.Q(("result", "positive")), fields=["tube"],
                               name="tuberesult_positive_idx"),  # fmt: skip
        ),
        migrations.RunPython(_fillfactor(_FILLFACTOR), _fillfactor(None)),
    ]
