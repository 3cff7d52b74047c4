# Worker tokens name the pipelines they may serve; existing tokens keep serving the built-in
# pipeline they could serve before.

from django.db import migrations, models


def existing_tokens_serve_builtin(apps, schema_editor):
    apps.get_model("generation", "WorkerToken").objects.update(pipelines=["builtin"])


class Migration(migrations.Migration):
    dependencies = [("generation", "0004_revisions_move_to_pipelines")]

    operations = [
        migrations.AddField(
            model_name="workertoken",
            name="pipelines",
            field=models.JSONField(blank=True, default=list, help_text='the pipelines this worker may serve and register: slugs or patterns such as "diffusers-*" ("*" for all)'),
        ),
        migrations.RunPython(existing_tokens_serve_builtin, migrations.RunPython.noop),
    ]
