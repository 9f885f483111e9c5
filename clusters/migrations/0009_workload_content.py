"""Workload reports stored once by content (issue 12): ``WorkloadContent`` holds report, detail and search
text keyed by their SHA-256; each scan's ``WorkloadResult`` row points at it. Existing rows are moved."""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models

import clusters.models


def _digest(report, detail, text):
    blob = json.dumps([report, detail, text], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def move_contents(apps, schema_editor):
    WorkloadResult = apps.get_model("clusters", "WorkloadResult")
    WorkloadContent = apps.get_model("clusters", "WorkloadContent")
    ids: dict[str, int] = {}
    batch = []
    rows = WorkloadResult.objects.order_by("pk").only("pk", "report", "detail", "search_text")
    for row in rows.iterator(chunk_size=1000):
        digest = _digest(row.report, row.detail, row.search_text)
        if digest not in ids:
            content, _ = WorkloadContent.objects.get_or_create(
                digest=digest,
                defaults={"report": row.report, "detail": row.detail, "search_text": row.search_text},
            )
            ids[digest] = content.pk
        row.content_id = ids[digest]
        batch.append(row)
        if len(batch) >= 1000:
            WorkloadResult.objects.bulk_update(batch, ["content"])
            batch = []
    if batch:
        WorkloadResult.objects.bulk_update(batch, ["content"])


def restore_contents(apps, schema_editor):
    WorkloadResult = apps.get_model("clusters", "WorkloadResult")
    batch = []
    for row in WorkloadResult.objects.select_related("content").iterator(chunk_size=1000):
        row.report, row.detail, row.search_text = (
            row.content.report,
            row.content.detail,
            row.content.search_text,
        )
        batch.append(row)
        if len(batch) >= 1000:
            WorkloadResult.objects.bulk_update(batch, ["report", "detail", "search_text"])
            batch = []
    if batch:
        WorkloadResult.objects.bulk_update(batch, ["report", "detail", "search_text"])


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0008_exemption_notification_auditevent"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkloadContent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(max_length=64, unique=True)),
                (
                    "report",
                    clusters.models.BulkJSONField(help_text="the workload in the shared report schema"),
                ),
                (
                    "detail",
                    clusters.models.BulkJSONField(
                        default=dict, help_text="traces, patches and evidence for the workload page"
                    ),
                ),
                ("search_text", models.CharField(blank=True, max_length=1024)),
            ],
        ),
        migrations.AddField(
            model_name="workloadresult",
            name="content",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="clusters.workloadcontent",
            ),
        ),
        # Nullable before the move, so that going back re-adds them nullable, fills them (restore_contents),
        # then makes them required again.
        migrations.AlterField(
            model_name="workloadresult",
            name="report",
            field=clusters.models.BulkJSONField(
                null=True, help_text="the workload in the shared report schema"
            ),
        ),
        migrations.AlterField(
            model_name="workloadresult",
            name="detail",
            field=clusters.models.BulkJSONField(
                null=True, default=dict, help_text="traces, patches and evidence for the workload page"
            ),
        ),
        migrations.AlterField(
            model_name="workloadresult",
            name="search_text",
            field=models.CharField(null=True, blank=True, max_length=1024),
        ),
        migrations.RunPython(move_contents, restore_contents),
        migrations.RemoveField(model_name="workloadresult", name="report"),
        migrations.RemoveField(model_name="workloadresult", name="detail"),
        migrations.RemoveField(model_name="workloadresult", name="search_text"),
        migrations.AlterField(
            model_name="workloadresult",
            name="content",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="clusters.workloadcontent",
            ),
        ),
        migrations.AlterField(
            model_name="workloadresult",
            name="scan",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="workloads",
                to="clusters.scan",
            ),
        ),
    ]
