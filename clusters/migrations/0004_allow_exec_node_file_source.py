"""Issue #8: exec reads widen (``exec_verification`` -> ``allow_exec``); who entered each node file and when;
where each scanned pool's node file came from, with its evidence."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clusters", "0003_bulk_json")]

    operations = [
        migrations.RenameField(model_name="cluster", old_name="exec_verification", new_name="allow_exec"),
        migrations.AlterField(
            model_name="cluster",
            name="allow_exec",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "exec reads allowed: `cat /etc/resolv.conf` in a few running pods per node pool (the nodes' "
                    "search domains) and in one pod per musl workload (verification); needs pods/exec"
                ),
            ),
        ),
        migrations.AddField(
            model_name="cluster",
            name="node_resolv_conf_entered",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='who entered each node file and when: pool (or "*" for all pools) -> {"by", "at"}',
            ),
        ),
        migrations.AddField(
            model_name="nodepoolresult",
            name="node_resolv_conf_source",
            field=models.CharField(
                choices=[
                    ("observed", "observed"),
                    ("entered", "entered"),
                    ("inferred", "inferred"),
                    ("unknown", "unknown"),
                ],
                default="unknown",
                help_text="where node_resolv_conf came from: observed (exec), entered, inferred or unknown",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="nodepoolresult",
            name="node_resolv_conf_evidence",
            field=models.JSONField(
                default=list,
                help_text="how: the pods it was read in, who entered it when, what it was inferred from",
            ),
        ),
    ]
