"""Voiding an invoice (docs/decisions/0051): when and why, and a void invoice always says when."""

from django.db import migrations, models
from django.db.models import F, Q


def backfill_voided_at(apps, schema_editor):
    """Nothing voided invoices before this migration; should a row say void anyway, its last change is when."""
    Invoice = apps.get_model("billing", "Invoice")
    Invoice.objects.filter(status="void", voided_at__isnull=True).update(voided_at=F("updated_at"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_merge_invoices_payments")]

    operations = [
        migrations.AddField(model_name="invoice", name="voided_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(
            model_name="invoice", name="void_reason", field=models.CharField(blank=True, default="", max_length=500)
        ),
        migrations.RunPython(backfill_voided_at, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=Q(status="void", voided_at__isnull=False) | (~Q(status="void") & Q(voided_at__isnull=True)),
                name="invoice_void_has_voided_at",
            ),
        ),
    ]
