"""Leasing the next item to an annotator.

Concurrency: on PostgreSQL the candidate item row is locked with SELECT ... FOR UPDATE SKIP
LOCKED and availability is re-checked in a fresh statement while the lock is held, so two
annotators never lease the same item; on SQLite every transaction is IMMEDIATE (one writer
at a time), which gives the same guarantee."""
import random
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotator.db import columns
from annotator.modelloop import predictions
from annotator.models import Annotation, Item, Lease, Membership

# The current item and one prefetched item.
MAX_LEASES_PER_USER = 2


def _uses_row_locks():
    return connection.features.has_select_for_update_skip_locked


# The claim is hand-written SQL, the same text on SQLite and PostgreSQL (on PostgreSQL with
# FOR UPDATE SKIP LOCKED appended): it runs on every `next`, and building it with the ORM's
# Exists/Subquery expressions cost more CPU than everything else in the request
# (docs/benchmarks.md, "The lease claim in SQL").
_ITEM = Item._meta.db_table
_LEASE = Lease._meta.db_table
_ANSWER = Annotation._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
_QUEUE = Item._meta.get_field("queue_entry").related_model._meta.db_table
_ITEM_COLUMNS = columns(Item, "i")
_LEASE_COLUMNS = columns(Lease, "l")


def _available(project, user, now):
    """(WHERE clause over `i`, params) of the items the user may be served: open, not
    answered by the user, not held by the user, and with a free slot (labels + others' live
    leases < annotations per item)."""
    where = (f"i.project_id = %s AND NOT i.done"
             f" AND NOT EXISTS (SELECT 1 FROM {_ANSWER} a WHERE a.item_id = i.id AND a.annotator_id = %s"
             f" AND NOT a.undone)"
             f" AND NOT EXISTS (SELECT 1 FROM {_LEASE} l WHERE l.item_id = i.id AND l.user_id = %s)")
    params = [project.pk, user.pk, user.pk]
    now = connection.ops.adapt_datetimefield_value(now)  # as the ORM would write it (SQLite: text)
    k = project.annotations_per_item
    if k == 1:
        where += f" AND NOT EXISTS (SELECT 1 FROM {_LEASE} l WHERE l.item_id = i.id AND l.expires_at > %s)"
        params.append(now)
    else:
        where += (f" AND i.label_count < %s - (SELECT COUNT(*) FROM {_LEASE} l"
                  f" WHERE l.item_id = i.id AND l.expires_at > %s)")
        params += [k, now]
    return where, params


def _in(ids):
    return ", ".join(["%s"] * len(ids))


def _still_available(candidates, project, user, now):
    """The candidates that are still available, by a fresh statement made while their rows
    are locked (on PostgreSQL the locking SELECT saw its subqueries as of its own snapshot):
    one query for all of them, with `_available`'s conditions."""
    where, params = _available(project, user, now)
    ids = [c.pk for c in candidates]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT i.id FROM {_ITEM} i WHERE {where} AND i.id IN ({_in(ids)})", params + ids)
        fresh = {row[0] for row in cursor.fetchall()}
    return [c for c in candidates if c.pk in fresh]


# (FROM and extra WHERE, ORDER BY) of each order a claim tries; %s is the audit draw's point.
_QUEUE_ORDER = (f"{_QUEUE} q JOIN {_ITEM} i ON i.id = q.item_id", "q.project_id = %s", "q.rank")
_PRIORITY_ORDER = (f"{_ITEM} i", "", "i.priority, i.pool_index")
_AUDIT_FROM = (f"{_ITEM} i", "i.priority >= %s", "i.priority, i.pool_index")
_AUDIT_BEFORE = (f"{_ITEM} i", "i.priority < %s", "i.priority, i.pool_index")


def _claim_item(project, user, now, *, audit):
    """Audit draws are uniform among the available items; otherwise the model's ranked queue
    comes first, then the rest in `priority` order.

    An audit draw takes the first available item at or after a uniform point in `priority`
    (drawn uniformly at import, independent of the model), wrapping around: one index range
    scan instead of ORDER BY RANDOM(), which sorts every available item (a million of them).

    Each order is tried first skipping the rows other requests hold, then, if none of the
    orders had a free row, again waiting for those rows (see `_claim_in_order`): a request
    on a project without a queue costs two skip-locked lookups, not two more that wait."""
    if audit:
        u = random.random()
        orders = [(_AUDIT_FROM, [u]), (_AUDIT_BEFORE, [u])]
    else:
        orders = [(_QUEUE_ORDER, [project.pk]), (_PRIORITY_ORDER, [])]
    waits = (False, True) if _uses_row_locks() else (False,)
    for wait in waits:
        for order, order_params in orders:
            item = _claim_in_order(project, user, now, order, order_params, wait=wait)
            if item is not None:
                return item
    return None


def _claim_in_order(project, user, now, order, order_params, *, wait):
    """The first available item in `order`, its row locked. With row locks and not `wait`,
    items other requests are looking at are skipped; with `wait`, the look waits for those
    locks instead: near the end of a pool every remaining item can be locked by someone
    else's request at once, and most of them are given back when those requests commit, so
    answering "nothing left" then would be wrong."""
    tried = []
    locks = _uses_row_locks()
    source, condition, order_by = order
    where, params = _available(project, user, now)
    if condition:
        where += f" AND {condition}"
    lock = (" FOR UPDATE OF i SKIP LOCKED" if not wait else " FOR UPDATE OF i") if locks else ""
    for _ in range(20):
        skip = f" AND i.id NOT IN ({_in(tried)})" if tried else ""
        sql = f"SELECT {_ITEM_COLUMNS} FROM {source} WHERE {where}{skip} ORDER BY {order_by} LIMIT 3{lock}"
        candidates = list(Item.objects.raw(sql, params + order_params + tried))
        if not candidates:
            return None
        if not locks:  # SQLite: the IMMEDIATE transaction already excludes every other writer
            return candidates[0]
        fresh = _still_available(candidates, project, user, now)
        if fresh:
            return fresh[0]
        tried += [c.pk for c in candidates]
    return None


def _drop_expired_leases(project, now):
    """Delete the project's expired leases. With row locks, one statement that skips the
    expired rows another request is deleting (or refreshing) right now: every `next` of the
    project runs this, and a plain DELETE made all of them that found the same expired rows
    wait for the first one's commit, one after another. A row skipped here is gone (or live
    again) when that request commits, and expired rows count as free meanwhile anyway.
    Hand-written: a queryset's delete() builds a deletion collector on every call."""
    expired = f"SELECT id FROM {_LEASE} WHERE project_id = %s AND expires_at <= %s"
    if _uses_row_locks():
        expired += " FOR UPDATE SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_LEASE} WHERE id IN ({expired})",
                       [project.pk, connection.ops.adapt_datetimefield_value(now)])


def lease_next(project, user, *, exclude=(), release=()):
    """The user's current lease (oldest live one not in `exclude`), refreshed; else a new
    lease on the best available item; None when nothing is available to this user.
    Leases on the items in `release` are given back first (a prefetched item the page
    drops because a new queue arrived)."""
    with transaction.atomic():
        lock_labeler(project, user)
        return lease_locked(project, user, exclude=exclude, release=release)


def lock_labeler(project, user):
    """Lock the user's membership row: one lease request per user and project at a time (two
    tabs), so the cap holds. Taken before any item row (the order every caller keeps)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {_MEMBERSHIP} WHERE project_id = %s AND user_id = %s{lock}",
                       [project.pk, user.pk])


def _held(project, user, now):
    """The user's live leases in the project, oldest first, each with `item_done` (its item
    is loaded only when the lease is served)."""
    return list(Lease.objects.raw(
        f"SELECT {_LEASE_COLUMNS}, i.done AS item_done FROM {_LEASE} l JOIN {_ITEM} i ON i.id = l.item_id"
        f" WHERE l.project_id = %s AND l.user_id = %s AND l.expires_at > %s ORDER BY l.created_at, l.id",
        [project.pk, user.pk, connection.ops.adapt_datetimefield_value(now)]))


def lease_locked(project, user, *, exclude=(), release=()):
    """lease_next's work, in the caller's transaction, which holds `lock_labeler`'s lock."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    if release:
        Lease.objects.filter(project=project, user=user, item_id__in=list(release)).delete()
    held = _held(project, user, now)
    for lease in held:
        if lease.item_id in exclude:
            continue
        if lease.item_done:
            lease.delete()
            continue
        lease.expires_at = expires
        # An UPDATE, not save(): the user's other tab may have answered (deleted) it meanwhile.
        if Lease.objects.filter(pk=lease.pk).update(expires_at=expires):
            return lease
    if sum(1 for lease in held if lease.item_id in exclude) >= MAX_LEASES_PER_USER:
        return None
    _drop_expired_leases(project, now)
    audit = random.random() < project.audit_fraction
    item = _claim_item(project, user, now, audit=audit)
    if item is None and audit:
        item = _claim_item(project, user, now, audit=False)
    if item is None:
        return None
    # The guess is fixed when the item is served: for audit items it is the honest
    # measure of the live model (the human has not answered yet).
    current = predictions.current(project)
    suggestion = current.suggestion(item) if current else None
    imported = suggestion is None and (suggestion := imported_guess(project, item)) is not None
    return Lease.objects.create(
        project=project,
        item=item,
        user=user,
        expires_at=expires,
        is_audit=audit,
        suggestion=suggestion,
        # No version for an imported guess, so it never counts as the model's (audit accuracy).
        model_version=current.version if current and not imported else None,
    )


def imported_guess(project, item):
    """Another tool's guess for the item (importing.suggestions) in the shape of the model's,
    with its `source`; None without one, or when its class has since been renamed or removed."""
    guess = item.external_suggestion
    if not isinstance(guess, dict) or guess.get("label") not in project.class_names():
        return None
    score = guess.get("score")
    return {"label": guess["label"], "confidence": score, "top": [{"label": guess["label"], "confidence": score}],
            "source": guess.get("source") or "imported"}


def release_leases(project, user):
    Lease.objects.filter(project=project, user=user).delete()
