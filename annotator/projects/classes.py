"""A project's classes: the names annotators choose from, their order and hotkeys. A class
with live labels cannot be removed, and names are checked once here for every caller."""
import uuid

from django.db import transaction
from django.db.models import Count, ProtectedError

from annotator.access import Invalid, NotFound
from annotator.db import lock_project_row
from annotator.models import NONE_HOTKEY, Annotation, LabelClass, default_hotkeys

MAX_CLASSES = 500
NO_NONE_FOR_MULTI_LABEL = (
    "A multi-label project needs no \"none of these\" class: an answer with no class checked already "
    "means none applies."
)


def find_class(project, name, *, classes=None):
    """The project's class called `name` (exactly, else ignoring case when that is unambiguous),
    or Invalid naming the classes."""
    classes = project.ordered_classes() if classes is None else classes
    name = (name or "").strip()
    exact = [c for c in classes if c.name == name]
    folded = [c for c in classes if c.name.casefold() == name.casefold()]
    match = exact or (folded if len(folded) == 1 else [])
    if not match:
        names = ", ".join(c.name for c in classes)
        raise Invalid(f"Unknown class {name!r}. This project's classes are: {names}.")
    return match[0]


def class_usage(project):
    """{class id: (live labels, all answers incl. deleted ones)}: a used class cannot go."""
    usage = {c.pk: (0, 0) for c in project.ordered_classes()}
    rows = (
        Annotation.objects.filter(label__project=project)
        .values("label_id", "undone")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        live, total = usage.get(row["label_id"], (0, 0))
        usage[row["label_id"]] = (live + (0 if row["undone"] else row["n"]), total + row["n"])
    return usage


def check_class_names(names):
    if len(names) < 2:
        raise Invalid("A project needs at least two classes.")
    if len(names) > MAX_CLASSES:
        raise Invalid(f"A project can have at most {MAX_CLASSES} classes.")
    if any(not n for n in names):
        raise Invalid("Class names cannot be empty.")
    if any(len(n) > 100 for n in names):
        raise Invalid("Class names are limited to 100 characters.")
    seen = set()
    for n in names:
        if n in seen:
            raise Invalid(f"Class names must be unique; {n!r} appears twice.")
        seen.add(n)


def _refuse_used_class(label, live, total):
    if live:
        raise Invalid(
            f"The class {label.name!r} cannot be removed: {live} label{'s' if live != 1 else ''} use it. "
            f"Rename it instead, or correct or delete those labels first."
        )
    raise Invalid(
        f"The class {label.name!r} cannot be removed: the history of {total} deleted answer"
        f"{'s' if total != 1 else ''} refers to it. Rename it instead."
    )


@transaction.atomic
def set_classes(project, entries):
    """Make the class list `entries`, in order: [{"id": existing class id or None, "name"}].
    Existing ids are renamed and moved, entries without an id are added, and classes left out
    are removed (refused while any answer refers to them). Hotkeys follow the new order. The
    "none of these" class (`is_none`) stays last with its own key, NONE_HOTKEY; an entry
    {"id": None, "name": ..., "is_none": True} adds it."""
    lock_project_row(project)
    current = {c.pk: c for c in project.ordered_classes()}
    entries = sorted(entries, key=lambda e: _is_none(current, e))  # stable: the none class goes last
    names = [(e.get("name") or "").strip() for e in entries]
    ids = [e.get("id") for e in entries]
    has_none = bool(entries) and _is_none(current, entries[-1])
    if has_none and project.multi_label:
        raise Invalid(NO_NONE_FOR_MULTI_LABEL)
    if sum(_is_none(current, e) for e in entries) > 1:
        raise Invalid("A project has at most one \"none of these\" class.")
    check_class_names(names[:-1] if has_none else names)  # two real classes at least
    check_class_names(names)  # the none class's name too
    given = [i for i in ids if i is not None]
    if len(set(given)) != len(given):
        raise Invalid("Each existing class may appear only once in the list.")
    strangers = [i for i in given if i not in current]
    if strangers:
        listed = ", ".join(f"{c.pk} ({c.name})" for c in current.values())
        raise Invalid(f"Class id {strangers[0]} is not a class of this project. Its classes are: {listed}.")
    usage = class_usage(project)
    for pk, label in current.items():
        if pk not in given and usage[pk][1]:
            _refuse_used_class(label, *usage[pk])
    try:
        LabelClass.objects.filter(pk__in=[pk for pk in current if pk not in given]).delete()
    except ProtectedError:  # answered with it since the check above
        raise Invalid(
            "A class you removed was just used in an answer, so it cannot be removed. Reload the page."
        ) from None
    # Renames go through temporary names, so that swapping two names never trips the unique constraint.
    renamed = [(current[i], n) for i, n in zip(ids, names) if i is not None and current[i].name != n]
    for label, _name in renamed:
        LabelClass.objects.filter(pk=label.pk).update(name=f"renaming-{uuid.uuid4().hex}")
    keys = default_hotkeys(names[:-1]) + [NONE_HOTKEY] if has_none else default_hotkeys(names)
    result = []
    for order, (pk, name, key) in enumerate(zip(ids, names, keys)):
        label = current[pk] if pk is not None else LabelClass(project=project)
        label.name, label.order, label.hotkey = name, order, key
        label.is_none = has_none and order == len(names) - 1
        label.save()
        result.append(label)
    return result


def _is_none(current, entry):
    """Whether a set_classes entry is the "none of these" class (an existing one, or a new one)."""
    known = current.get(entry.get("id"))
    return bool(known.is_none if known is not None else entry.get("is_none"))


def none_class(project):
    return LabelClass.objects.filter(project=project, is_none=True).first()


def set_none_class(project, name):
    """Turn the "none of these" class on (`name`: its name; renames it when it is on) or off
    (None: removed, refused while answers use it, like any class). Single-label projects only."""
    entries = _class_entries(project)
    existing = none_class(project)
    if name is None:
        if existing is None:
            return None
        return set_classes(project, [e for e in entries if e["id"] != existing.pk])
    if project.multi_label:
        raise Invalid(NO_NONE_FOR_MULTI_LABEL)
    name = name.strip()
    if existing is None:
        entries.append({"id": None, "name": name, "is_none": True})
    else:
        next(e for e in entries if e["id"] == existing.pk)["name"] = name
    return set_classes(project, entries)


def _class_entries(project):
    return [{"id": c.pk, "name": c.name} for c in project.ordered_classes()]


def add_class(project, name):
    return set_classes(project, _class_entries(project) + [{"id": None, "name": name}])


def rename_class(project, class_id, name):
    entries = _class_entries(project)
    for entry in entries:
        if entry["id"] == class_id:
            entry["name"] = name
            return set_classes(project, entries)
    raise NotFound("There is no such class in this project. Reload the page.")


def move_class(project, class_id, offset):
    """Move a class `offset` places up (negative) or down (positive) the list."""
    entries = _class_entries(project)
    at = next((i for i, e in enumerate(entries) if e["id"] == class_id), None)
    if at is None:
        raise NotFound("There is no such class in this project. Reload the page.")
    to = max(0, min(len(entries) - 1, at + offset))
    entries.insert(to, entries.pop(at))
    return set_classes(project, entries)


def remove_class(project, class_id):
    entries = _class_entries(project)
    kept = [e for e in entries if e["id"] != class_id]
    if len(kept) == len(entries):
        raise NotFound("There is no such class in this project. Reload the page.")
    return set_classes(project, kept)
