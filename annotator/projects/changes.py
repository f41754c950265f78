"""Creating a project (who may, and how many: PROJECT_CREATORS, MAX_PROJECTS_PER_USER) and
changing its settings (name, strategy, batch size, audit fraction, answers per item) and its
class list in one transaction."""
from django.conf import settings
from django.db import transaction

from annotator.access import Forbidden, Invalid
from annotator.db import lock_project_row
from annotator.models import NONE_HOTKEY, Item, LabelClass, Membership, Project, Role, default_hotkeys
from annotator.projects.classes import NO_NONE_FOR_MULTI_LABEL, check_class_names, set_classes, set_none_class


def creation_refusal(user):
    """Why `user` may not create a project now (a sentence), or None."""
    if settings.PROJECT_CREATORS == "staff" and not user.is_staff:
        return "Only staff members can create projects on this server. Ask an administrator to create one for you."
    limit = settings.MAX_PROJECTS_PER_USER
    if limit and Project.objects.filter(created_by=user).count() >= limit:
        return (f"You have created {limit} projects, the most one user may create on this server "
                "(MAX_PROJECTS_PER_USER). Ask an administrator to raise the limit.")
    return None


@transaction.atomic
def create_project(owner, *, name, classes, check_limits=True, none_class=None, **options):
    """A new project owned by `owner`. `none_class`: the name of a "none of these" class to
    add after `classes` (single-label projects only). `check_limits=False` is for the
    operator's commands (demo data, benchmarks): PROJECT_CREATORS and MAX_PROJECTS_PER_USER
    apply to users."""
    refusal = creation_refusal(owner) if check_limits else None
    if refusal:
        raise Forbidden(refusal)
    names = [c.strip() for c in classes]
    if not name.strip():
        raise Invalid("A project needs a name.")
    check_class_names(names)
    if none_class is not None:
        if options.get("multi_label"):
            raise Invalid(NO_NONE_FOR_MULTI_LABEL)
        check_class_names([*names, none_class.strip()])
    project = Project(name=name.strip(), slug=Project.unique_slug(name), created_by=owner, **options)
    project.full_clean()
    project.save()
    LabelClass.objects.bulk_create(
        LabelClass(project=project, name=n, order=i, hotkey=key)
        for i, (n, key) in enumerate(zip(names, default_hotkeys(names)))
    )
    if none_class is not None:
        LabelClass.objects.create(project=project, name=none_class.strip(), order=len(names), hotkey=NONE_HOTKEY,
                                  is_none=True)
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    return project


SETTINGS_FIELDS = ("name", "strategy", "query_batch_size", "audit_fraction", "annotations_per_item", "review_fraction")
MULTI_LABEL_FIXED = (
    "Whether a project is multi-label is chosen when it is created and cannot be changed afterwards (its "
    "answers, model and exports depend on it). Create a new project to label the images the other way."
)


@transaction.atomic
def update_settings(project, **changes):
    """Change any of SETTINGS_FIELDS. A new answers-per-item count re-decides which items
    are done, so raising it puts partly labeled items back in the queue."""
    if "multi_label" in changes:
        raise Invalid(MULTI_LABEL_FIXED)
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise Invalid(f"Unknown settings: {', '.join(sorted(unknown))}. Settings are {', '.join(SETTINGS_FIELDS)}.")
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            raise Invalid("A project needs a name.")
    lock_project_row(project)
    for field, value in changes.items():
        setattr(project, field, value)
    project.full_clean()
    project.save(update_fields=list(changes) or None)
    if "annotations_per_item" in changes:
        k = project.annotations_per_item
        items = Item.objects.filter(project=project)
        items.filter(done=True, label_count__lt=k).update(done=False)
        items.filter(done=False, label_count__gte=k).update(done=True)
    return project


@transaction.atomic
def change_project(project, *, classes=None, **changes):
    """Settings, the class list (as set_classes takes it) and the "none of these" class
    (`none_class`: a name turns it on or renames it, None turns it off) together: all change
    or none."""
    none_change = "none_class" in changes
    none_name = changes.pop("none_class", None)
    if changes:
        update_settings(project, **changes)
    if classes is not None:
        set_classes(project, classes)
    if none_change:
        set_none_class(project, none_name)
    return project
