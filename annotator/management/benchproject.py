"""A throwaway labeling project for the serving benchmarks (`profile_labeling`,
`bench_serving`): an owner, N annotators with API tokens, and bulk-inserted items with dummy
image names (the next and answer paths never open an image file), then the clean-up.

The project's trainer lease is held by the benchmark (as `Trainer.claim` would hold it), so
a trainer on the same database leaves the project alone: the figures are the serving path's.
"""
import secrets
from datetime import timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from annotator.accounts.tokens import issue_token
from annotator.models import Annotation, Item, Lease, Role, TrainerState
from annotator.projects.changes import create_project
from annotator.projects.members import add_member

CLASSES = ["bar", "column", "square", "ring"]
BATCH = 5000  # rows per bulk insert
LEASE_HOURS = 12


def create(items, annotators, *, prefix="bench", seed=0, audit_fraction=0.0):
    """(project, owner, [(username, token), ...], owner_token): a project with `items`
    items and `annotators` annotators, each with an API token."""
    tag = secrets.token_hex(3)
    users = get_user_model().objects
    owner = users.create_user(f"{prefix}-{tag}-owner")
    project = create_project(owner, name=f"{prefix} {tag}", classes=CLASSES, audit_fraction=audit_fraction,
                             check_limits=False)
    now = timezone.now()
    TrainerState.objects.create(project=project, owner=f"{prefix}:{tag}", heartbeat_at=now,
                                lease_expires_at=now + timedelta(hours=LEASE_HOURS))
    people = []
    for i in range(annotators):
        user = users.create_user(f"{prefix}-{tag}-{i + 1}")
        add_member(project, user.username, Role.ANNOTATOR)
        people.append((user.username, issue_token(user, name=prefix)[1]))
    rng = np.random.default_rng(seed)
    rows = [Item(project=project, image=f"{prefix}/{tag}/{i}.png", content_hash=f"{tag}{i:058x}", width=32,
                 height=32, pool_index=i, priority=float(p)) for i, p in enumerate(rng.random(items))]
    for start in range(0, len(rows), BATCH):
        Item.objects.bulk_create(rows[start:start + BATCH])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotator_item")
    return project, owner, people, issue_token(owner, name=prefix)[1]


def delete(project):
    """The project, its rows and its users (answers first: they protect the classes)."""
    usernames = list(project.memberships.values_list("user__username", flat=True))
    Lease.objects.filter(project=project).delete()
    Annotation.objects.filter(item__project=project).delete()
    TrainerState.objects.filter(project=project).delete()
    Item.objects.filter(project=project)._raw_delete(connection.alias)  # no files, no dependants left
    project.delete()
    get_user_model().objects.filter(username__in=usernames).delete()
