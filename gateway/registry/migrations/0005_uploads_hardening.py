"""Upload hardening (docs/decisions/0012): tails may live in an object, counted per session.

`hash_state` keeps its column and its old content: a 104-byte value is a pre-0012 session's raw
SHA-256 state and digests.ResumableHasher still reads it, so in-flight sessions keep working.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_token_auth"),
        ("registry", "0004_gc_retention"),
    ]

    operations = [
        migrations.AddField(
            model_name="blobupload",
            name="tail_key",
            field=models.CharField(blank=True, default="", max_length=512),
        ),
        migrations.AddField(
            model_name="blobupload",
            name="tail_size",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="blobupload",
            name="tail_spilled",
            field=models.BooleanField(default=False),
        ),
        # Tails that sessions already carry in the row count against the tenant's tail cap from now on.
        migrations.RunSQL(
            "UPDATE registry_blobupload SET tail_size = octet_length(tail) WHERE state = 'active' AND octet_length(tail) > 0",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="blobupload",
            index=models.Index(fields=["tenant", "state"], name="blobupload_tenant_state"),
        ),
    ]
