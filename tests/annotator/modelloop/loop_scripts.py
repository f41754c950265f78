"""Helpers the crash tests run in subprocesses, against a throwaway data dir (and database):
`python -m tests.annotator.modelloop.loop_scripts setup|label N|verify|die-at KIND STEP|catch-up`."""
import json
import os
import sys


def main(argv):
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings")
    django.setup()
    from django.contrib.auth import get_user_model

    from annotator.labeling.answers import submit_annotation
    from annotator.labeling.leasing import lease_next
    from annotator.models import Project
    from annotator.projects.changes import create_project

    command = argv[0]
    if command == "setup":
        from tests.annotator.modelloop.trainer_helpers import SHAPES, add_shape_items

        user = get_user_model().objects.create_user("alice", password="x" * 12)
        project = create_project(user, name="Shapes", classes=SHAPES, audit_fraction=0.0)
        add_shape_items(project, 90)
        print(json.dumps({"project": project.pk}))
    elif command == "label":
        from tests.annotator.modelloop.trainer_helpers import SHAPES

        project = Project.objects.get(slug="shapes")
        user = get_user_model().objects.get(username="alice")
        for _ in range(int(argv[1])):
            lease = lease_next(project, user)
            if lease is None:
                break
            kind = lease.item.original_name.split("-")[0]
            assert kind in SHAPES
            submit_annotation(project, user, item_id=lease.item_id, label=kind,
                                       idempotency_key=f"{lease.item_id}-{lease.pk}")
    elif command == "verify":
        print(json.dumps(verify(Project.objects.get(slug="shapes"))))
    elif command == "die-at":
        die_at(argv[1], argv[2])
    elif command == "catch-up":
        from annotator.modelloop.trainer import Trainer

        trainer = Trainer("victim", publish=lambda *a: None)
        for _ in range(4):
            trainer.run_once()
        trainer.release()


# Where `die-at` kills the trainer (SIGKILL to itself: no `finally`, no rollback but the
# database's own), for a step of the given kind ("pretrain" or "fast"):
#   checkpoint-rename  the checkpoint's temporary file written, not yet renamed (pretrain)
#   after-artifacts    every artifact file of the step written, nothing in the database yet
#   in-transaction     the version row inserted inside the commit's transaction, not committed
#   after-commit       the transaction committed, before anything else runs
STEPS = ("checkpoint-rename", "after-artifacts", "in-transaction", "after-commit")


def die_at(kind, step):
    """Run a trainer named "victim" (the same name every time, so the next one takes the
    project at once) until it reaches `step` of a `kind` step, and kill it there. Exits
    with 3 if it never got there (the injection did not fire: the test must fail)."""
    import signal

    from django.db.models.signals import post_save

    from annotator.modelloop import bridge, results
    from annotator.modelloop.trainer import Trainer
    from annotator.models import ModelVersion
    from mlcore import checkpoint

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after(function, when):
        def wrapped(*args, **kwargs):
            out = function(*args, **kwargs)
            if when(args, kwargs):
                die()
            return out
        return wrapped

    if step == "checkpoint-rename":
        assert kind == "pretrain", "only pretraining and fine-tuning write checkpoints"
        real_replace = checkpoint.os.replace
        checkpoint.os.replace = lambda a, b: die() if str(b).endswith("learner.pt") else real_replace(a, b)
    elif step == "after-artifacts":
        if kind == "fast":
            results.write_probabilities = after(results.write_probabilities, lambda a, k: True)
        else:
            bridge.checkpoint_files = after(bridge.checkpoint_files, lambda a, k: a[2] == kind)
    elif step == "in-transaction":
        def on_save(sender, instance, created, **kwargs):
            if created and instance.kind == kind:
                die()
        post_save.connect(on_save, sender=ModelVersion, weak=False)
    elif step == "after-commit":
        results.commit_version = after(results.commit_version, lambda a, k: k["kind"] == kind)
    else:
        raise SystemExit(f"unknown step {step!r}; one of {', '.join(STEPS)}")
    trainer = Trainer("victim", publish=lambda *a: None)
    for _ in range(6):
        trainer.run_once()
    sys.exit(3)


def verify(project):
    """Every committed artifact loads; the queue is one whole version's queue."""
    import numpy as np

    from annotator.modelloop import predictions
    from annotator.models import ModelVersion, QueueEntry, TrainerState
    from mlcore.checkpoint import load_checkpoint

    problems = []
    versions = ModelVersion.objects.filter(project=project, status="ok")
    for v in versions.exclude(checkpoint=""):
        try:
            load_checkpoint(str(predictions.artifact_path(v.checkpoint)))
        except Exception as exc:  # noqa: BLE001
            problems.append(f"v{v.number} checkpoint: {exc}")
    for v in versions.filter(kind="fast").exclude(artifact_dir=""):
        folder = predictions.artifact_path(v.artifact_dir)
        try:
            index = np.load(folder / "pool_index.npy")
            if v.labels_used:
                probs = np.load(folder / "probs.npy")
                assert probs.shape == (len(index), len(v.classes)), probs.shape
        except Exception as exc:  # noqa: BLE001
            problems.append(f"v{v.number} probabilities: {exc}")
    queue = list(QueueEntry.objects.filter(project=project).values_list("version_id", "rank"))
    state = TrainerState.objects.filter(project=project).first()
    if queue:
        if len({v for v, _r in queue}) != 1:
            problems.append("queue mixes versions")
        if sorted(r for _v, r in queue) != list(range(len(queue))):
            problems.append("queue ranks have holes")
        current = state.current_version if state else None
        queued = ModelVersion.objects.get(pk=queue[0][0])
        if current is None or queued.number > current.number:
            problems.append("the queue belongs to a version that is not committed as current")
    return {
        "problems": problems,
        "versions": versions.count(),
        "pretrain": versions.filter(kind="pretrain").count(),
        "fast_labels": max(versions.filter(kind="fast").values_list("labels_used", flat=True), default=-1),
        "queue": len(queue),
        "owner": state.owner if state else "",
    }


if __name__ == "__main__":
    main(sys.argv[1:])
