"""projects.instructions: Markdown rendered and sanitised, the version, and who has seen it."""
from annotator.models import Membership
from annotator.projects.instructions import instructions_for, render_markdown, take_unseen, update_instructions


def test_markdown_is_rendered_and_sanitised():
    assert render_markdown("") == ""
    assert render_markdown("- a\n- **b**") == "<ul>\n<li>a</li>\n<li><strong>b</strong></li>\n</ul>\n"
    link = render_markdown("[site](https://example.org)")
    assert link == '<p><a href="https://example.org" rel="noopener noreferrer nofollow">site</a></p>\n'
    hostile = render_markdown('<img src=x onerror="alert(1)"> <iframe src="https://evil"></iframe> [x](data:text/html,hi)')
    assert "<img" not in hostile and "<iframe" not in hostile and 'href="data' not in hostile
    assert "&lt;iframe" in hostile  # raw HTML is shown as text
    image = render_markdown('![cat](/projects/1/items/5/image/ "t")')
    assert image == '<p><img src="/projects/1/items/5/image/" alt="cat" title="t"></p>\n'
    # Another site's image would break the pages' Content-Security-Policy: its src goes.
    assert render_markdown("![cat](https://example.org/c.png) ![x](//evil.org/x.png)") == '<p><img alt="cat"> <img alt="x"></p>\n'


def test_each_member_sees_each_version_once(project, alice, bob):
    # Nothing to show yet: nothing is taken.
    assert take_unseen(project, bob, instructions_for(project)) is False
    update_instructions(project, markdown="Look at the top half.")
    current = instructions_for(project)
    assert take_unseen(project, bob, current) is True
    assert take_unseen(project, bob, current) is False
    assert take_unseen(project, alice, current) is True  # each member separately
    assert Membership.objects.get(project=project, user=bob).instructions_seen == 1
    update_instructions(project, classes=[{"id": project.classes.first().pk, "description": "Round."}])
    assert take_unseen(project, bob, instructions_for(project)) is True
    # Removed instructions are nothing to show.
    update_instructions(project, markdown="", classes=[{"id": project.classes.first().pk, "description": ""}])
    emptied = instructions_for(project)
    assert (emptied["version"], emptied["has_content"]) == (3, False)  # one edit, one version
    assert take_unseen(project, bob, emptied) is False
