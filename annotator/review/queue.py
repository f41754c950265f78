"""The review queue: which items a reviewer should look at and why, handed out one at a time.

An item is in the queue while nobody has reviewed it (`Item.reviewed_at` is empty: a review
verdict, or an owner settling a suspect on the dashboard, sets it) and one of REASONS holds:

- "disagreement": two or more live labels that differ (multi-label: different sets). Read
  in SQL: an item disagrees when some class is given by fewer of its live answers than it
  has live labels (`label_count`, kept with every answer), i.e. when its (answer, class)
  pairs are fewer than its distinct classes times its live labels (one GROUP BY).
- "unsure": a live "unsure" answer (a skip, so out of training until a reviewer labels it).
- "suspect": the dashboard's suspect labels: the current model, with the label held out,
  confidently disagrees with it (annotator.dashboard.model_side.suspect_guesses).
- "sample": a random sample of each annotator's answers: a live label given in the app (by
  hand or in bulk) whose draw is below `Project.review_fraction`. An answer's draw is a fixed
  number in [0, 1) computed from its id (`sample_draw`, a golden-ratio Weyl sequence, so any
  run of one annotator's answers is spread evenly), the same in SQL and Python: raising the
  fraction adds answers to the sample and never reshuffles it.

The queue is served in REASONS order, oldest item (lowest id) first within a reason, the
suspects most confident first. A reviewer holds one item at a time (ReviewLease, one row per
item, so two reviewers never get the same item at once; works the same on SQLite and
PostgreSQL, where the unique index makes the second insert fail); the lease lasts
LEASE_SECONDS and is renewed by asking again. Items answered again after a review do not
come back.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from annotator.dashboard.model_side import suspect_guesses
from annotator.models import Annotation, AnnotationLabel, Item, ReviewLease

REASONS = ("disagreement", "unsure", "suspect", "sample")
SAMPLED_SOURCES = (Annotation.Source.HUMAN, Annotation.Source.BULK)
SAMPLE_MODULUS = 1 << 20
SAMPLE_STEP = 648_055  # about SAMPLE_MODULUS / golden ratio, odd
CANDIDATES_PER_REASON = 20  # looked at per reason and request before moving on


def sample_draw(annotation_id):
    """The answer's fixed draw in [0, 1) for the review sample."""
    return (annotation_id % SAMPLE_MODULUS) * SAMPLE_STEP % SAMPLE_MODULUS / SAMPLE_MODULUS


def drawn_below(annotations, fraction):
    """The answers of `annotations` whose sample_draw is below `fraction`, in SQL."""
    draw = (F("pk") % SAMPLE_MODULUS) * SAMPLE_STEP % SAMPLE_MODULUS
    return annotations.annotate(draw=draw).filter(draw__lt=fraction * SAMPLE_MODULUS)


def _sampled(project):
    """Live labels in the sample."""
    labels = Annotation.objects.filter(undone=False, skipped=False, source__in=SAMPLED_SOURCES)
    return drawn_below(labels, project.review_fraction)


def _disagreeing(project):
    """The ids of the project's items whose live labels differ (a subquery: one grouped scan
    of the answers of items with two or more labels). Answers agree when each class they
    give is given by every one of them: their (answer, class) pairs are then (distinct
    classes) x (live labels); fewer pairs means they differ."""
    if project.multi_label:
        item, labels = "annotation__item", "annotation__item__label_count"
        given = AnnotationLabel.objects.filter(annotation__item__project=project, annotation__undone=False)
    else:
        item, labels = "item", "item__label_count"
        given = Annotation.objects.filter(item__project=project, undone=False, skipped=False)
    grouped = (given.filter(**{f"{labels}__gte": 2, f"{item}__reviewed_at__isnull": True}).values(item, labels)
               .annotate(pairs=Count("pk"), kinds=Count("label", distinct=True)))
    return grouped.filter(pairs__lt=F("kinds") * F(labels)).values(item)


def _reason_filter(project, reason, suspects):
    """A Q on Item for the items that `reason` puts in the queue."""
    if reason == "disagreement":
        return Q(pk__in=_disagreeing(project))
    if reason == "unsure":
        return Exists(Annotation.objects.filter(item=OuterRef("pk"), undone=False, unsure=True))
    if reason == "suspect":
        return Q(pk__in=list(suspects))
    if project.review_fraction <= 0:
        return Q(pk__in=[])
    return Exists(_sampled(project).filter(item=OuterRef("pk")))


def _open_items(project):
    return Item.objects.filter(project=project, reviewed_at__isnull=True)


def answer_names(annotation):
    """The class names an answer gives, sorted (a tuple), or None for a skip or unsure."""
    if annotation.skipped:
        return None
    if annotation.label_id:
        return (annotation.label.name,)
    return tuple(sorted(c.name for c in annotation.labels.all()))


def live_answers(item):
    return list(Annotation.objects.filter(item=item, undone=False).select_related("label", "annotator")
                .prefetch_related("labels").order_by("created_at", "pk"))


def reasons_for(project, item, answers, suspects):
    """Which REASONS hold for the item now, given its live `answers`."""
    given = [answer_names(a) for a in answers if not a.skipped]
    reasons = []
    if len(set(given)) > 1:
        reasons.append("disagreement")
    if any(a.unsure for a in answers):
        reasons.append("unsure")
    guess = suspects.get(item.pk)
    if guess is not None and any(names != (guess,) for names in given):
        reasons.append("suspect")
    if any(not a.skipped and a.source in SAMPLED_SOURCES and sample_draw(a.pk) < project.review_fraction
           for a in answers):
        reasons.append("sample")
    return reasons


@dataclass
class Candidate:
    item: Item
    reasons: list
    answers: list  # the live answers, oldest first
    lease: ReviewLease
    suspect_guess: str | None  # the class the model (label held out) believes, for a suspect


def next_for_review(project, reviewer):
    """The reviewer's item to review: the one they hold (renewed) while it still needs a
    review, else a new lease on the first item of the queue; None when the queue is empty."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LEASE_SECONDS)
    suspects = suspect_guesses(project)
    with transaction.atomic():
        ReviewLease.objects.filter(project=project, expires_at__lte=now).delete()
        held = ReviewLease.objects.filter(project=project, reviewer=reviewer).select_related("item").first()
        if held is not None:
            candidate = _candidate(project, held.item, held, suspects)
            if candidate is not None:
                ReviewLease.objects.filter(pk=held.pk).update(expires_at=expires)
                held.expires_at = expires
                return candidate
            held.delete()
        taken = ReviewLease.objects.filter(item=OuterRef("pk"))
        for reason in REASONS:
            items = _open_items(project).filter(_reason_filter(project, reason, suspects)).exclude(Exists(taken))
            ranked = items.order_by("pk")[:CANDIDATES_PER_REASON]
            if reason == "suspect":
                found = {item.pk: item for item in items.filter(pk__in=list(suspects)[:CANDIDATES_PER_REASON * 5])}
                ranked = [found[pk] for pk in suspects if pk in found][:CANDIDATES_PER_REASON]
            for item in ranked:
                answers = live_answers(item)
                if not reasons_for(project, item, answers, suspects):
                    continue
                try:
                    with transaction.atomic():
                        lease = ReviewLease.objects.create(project=project, item=item, reviewer=reviewer,
                                                           expires_at=expires)
                except IntegrityError:  # another reviewer took it meanwhile
                    continue
                return _candidate(project, item, lease, suspects, answers)
    return None


def _candidate(project, item, lease, suspects, answers=None):
    item.refresh_from_db(fields=["reviewed_at", "label_count"])
    if item.reviewed_at is not None:
        return None
    answers = live_answers(item) if answers is None else answers
    reasons = reasons_for(project, item, answers, suspects)
    if not reasons:
        return None
    return Candidate(item, reasons, answers, lease, suspects.get(item.pk) if "suspect" in reasons else None)


def queue_counts(project):
    """{reason: unreviewed items it holds} (an item can count under several reasons), and
    "total": the items in the queue. Four queries of item ids (their union is the total: an
    OR of the four filters in one count took as long as the four together)."""
    suspects = suspect_guesses(project)
    open_items = _open_items(project)
    ids = {reason: set(open_items.filter(_reason_filter(project, reason, suspects)).values_list("pk", flat=True))
           for reason in REASONS}
    return {**{reason: len(found) for reason, found in ids.items()}, "total": len(set().union(*ids.values()))}


def release_review_lease(project, reviewer):
    ReviewLease.objects.filter(project=project, reviewer=reviewer).delete()
