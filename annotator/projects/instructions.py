"""A project's labeling instructions: the owners' Markdown text, and a description and example
images per class. Rendered here, on the server, and sanitised, for the labeling page, the
settings page and the API alike.

Markdown is parsed by markdown-it-py (CommonMark, raw HTML off, so `<script>` in the text
comes out as text) and the HTML is then cleaned by nh3 (the Ammonia sanitiser) to a short
list of tags and http(s)/mailto links, so a future parser option or bug cannot let markup
through. Every edit bumps `Project.instructions_version` and tells the project's open pages
(a live event); a member whose `Membership.instructions_seen` is older gets the instructions
shown again.
"""
import nh3
from django.db import transaction
from django.db.models import F
from markdown_it import MarkdownIt

from annotator import events
from annotator.access import Invalid
from annotator.db import lock_project_row
from annotator.models import Item, LabelClass, Membership

MAX_INSTRUCTIONS_CHARS = 20_000
MAX_DESCRIPTION_CHARS = 2_000
MAX_EXAMPLES = 8  # example images per class

_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}


def _same_site_images(tag, attribute, value):
    """Images only from this server (an item's image URL, say): the pages' Content-Security-
    Policy would block any other, so it is dropped here instead of showing broken."""
    if tag == "img" and attribute == "src" and not (value.startswith("/") and not value.startswith("//")):
        return None
    return value


def render_markdown(text):
    """Safe HTML for Markdown `text`: links to http, https and mailto only, images from this
    server only."""
    if not text or not text.strip():
        return ""
    return nh3.clean(
        _PARSER.render(text),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_same_site_images,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def instructions_for(project):
    """Everything the instructions show: {version, markdown, html, has_content, classes: [{id,
    name, hotkey, description, description_html, examples: [{id, name, image_url}]}]}."""
    classes = LabelClass.objects.filter(project=project).prefetch_related("examples").order_by("order", "id")
    rows = []
    for label in classes:
        examples = sorted(label.examples.all(), key=lambda item: item.pk)
        rows.append({
            "id": label.pk,
            "name": label.name,
            "hotkey": label.hotkey,
            "description": label.description,
            "description_html": render_markdown(label.description),
            "examples": [{"id": i.pk, "name": i.original_name or f"image #{i.pk}", "image_url": i.image_url()}
                         for i in examples],
        })
    html = render_markdown(project.instructions)
    return {
        "version": project.instructions_version,
        "markdown": project.instructions,
        "html": html,
        "has_content": bool(html) or any(r["description_html"] or r["examples"] for r in rows),
        "classes": rows,
    }


def take_unseen(project, user, instructions):
    """True once per instructions version for each member: when there is something to show
    and the member has not seen this version yet (recorded now, in the same UPDATE, so two
    tabs opened at once show it only once)."""
    if not instructions["has_content"]:
        return False
    version = instructions["version"]
    return bool(
        Membership.objects.filter(project=project, user=user, instructions_seen__lt=version).update(
            instructions_seen=version
        )
    )


def check_example_ids(project, ids):
    """The distinct item ids of `ids`, in order; Invalid unless each is an item of `project`."""
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_EXAMPLES:
        raise Invalid(f"A class can have at most {MAX_EXAMPLES} example images; {len(wanted)} were given.")
    found = set(Item.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise Invalid(
            f"Image #{missing[0]} is not an image of this project. Use the number shown next to an "
            "image's name on the labeling page."
        )
    return wanted


@transaction.atomic
def update_instructions(project, *, markdown=None, classes=None):
    """Change the instructions text and/or classes' descriptions and examples, given as
    [{"id": class id, "description"?: text, "examples"?: [item ids]}] (only what is sent
    changes). All or nothing; the version grows when anything changed."""
    if markdown is not None and len(markdown) > MAX_INSTRUCTIONS_CHARS:
        raise Invalid(f"The instructions are limited to {MAX_INSTRUCTIONS_CHARS:,} characters; they have {len(markdown):,}.")
    ids = [entry.get("id") for entry in classes or ()]
    if len(set(ids)) != len(ids):
        raise Invalid("Each class may appear only once in the list of classes.")
    lock_project_row(project)
    project.refresh_from_db(fields=["instructions", "instructions_version"])  # as another owner left it
    current = {c.pk: c for c in LabelClass.objects.filter(project=project).prefetch_related("examples")}
    changes = []
    for entry in classes or ():
        label = current.get(entry.get("id"))
        if label is None:
            names = ", ".join(f"{c.pk} ({c.name})" for c in current.values())
            raise Invalid(f"Class id {entry.get('id')} is not a class of this project. Its classes are: {names}.")
        description = entry.get("description")
        if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
            raise Invalid(f"The description of {label.name!r} is limited to {MAX_DESCRIPTION_CHARS:,} characters.")
        examples = entry.get("examples")
        if examples is not None:
            examples = check_example_ids(project, examples)
        changes.append((label, description, examples))
    changed = False
    if markdown is not None and markdown != project.instructions:
        project.instructions = markdown
        changed = True
    for label, description, examples in changes:
        if description is not None and description != label.description:
            label.description = description
            label.save(update_fields=["description"])
            changed = True
        if examples is not None and set(examples) != {i.pk for i in label.examples.all()}:
            label.examples.set(examples)
            changed = True
    if changed:
        project.instructions_version = F("instructions_version") + 1
        project.save(update_fields=["instructions", "instructions_version"])
        project.refresh_from_db(fields=["instructions", "instructions_version"])
        # Open labeling pages fetch and show the new version (static/js/label.js).
        version = project.instructions_version
        transaction.on_commit(lambda: events.publish(project.pk, events.instructions_event(version)))
    return project

