"""The bulk-labeling grid page: labelers only, the candidates as preselected tiles with their
member-checked image URLs, the labeling page's "Similar images" link, and refusals."""
import numpy as np
import pytest
from django.urls import reverse

from annotator.labeling.leasing import lease_next
from tests.annotator.labeling.bulk_helpers import publish


@pytest.fixture
def pool(project, make_items):
    items = make_items(15)
    probs = np.zeros((15, 3), np.float32)
    probs[:, 1] = np.linspace(0.2, 0.9, 15)
    near = np.array([[(i + 1) % 15, (i + 2) % 15] for i in range(15)])
    publish(project, probs, [i.pool_index for i in items], near=near, sims=np.full((15, 2), 0.8))
    return items


def _get(client, user, project, **query):
    client.force_login(user)
    return client.get(reverse("bulk", args=[project.pk]), query)


def test_the_grid_shows_the_candidates_preselected(client, project, bob, pool):
    page = _get(client, bob, project, label="one", size=12)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="bulk-tile"') == 12 and html.count('aria-selected="true"') == 12
    for item in pool[14:2:-1]:  # the surest first
        assert f'data-item="{item.pk}"' in html and item.image_url() in html
    assert html.index(f'data-item="{pool[14].pk}"') < html.index(f'data-item="{pool[13].pk}"')
    assert 'option value="one" selected' in html
    assert reverse("api:project-annotations-bulk", args=[project.pk]) in html
    assert "<script>" not in html and "style=" not in html  # the CSP: no inline script or style


def test_similar_images_start_with_the_chosen_one(client, project, bob, pool):
    html = _get(client, bob, project, similar_to=pool[3].pk).content.decode()
    assert html.index(f'data-item="{pool[3].pk}"') < html.index(f'data-item="{pool[4].pk}"')
    assert "the images nearest to it" in html


def test_the_labeling_page_links_to_the_similar_images(client, project, bob, pool):
    client.force_login(bob)
    html = client.get(reverse("label", args=[project.pk])).content.decode()
    current = lease_next(project, bob)
    assert f'{reverse("bulk", args=[project.pk])}?similar_to={current.item_id}' in html


def test_without_a_query_the_page_offers_the_classes(client, project, bob, pool):
    html = _get(client, bob, project).content.decode()
    assert 'name="label"' in html and 'class="bulk-tile"' not in html


def test_a_bad_query_is_a_400_with_the_reason(client, project, bob, pool):
    page = _get(client, bob, project, label="one", size=500)
    assert page.status_code == 400 and "from 12 to 48" in page.content.decode()


def test_viewers_get_403_and_outsiders_404(client, project, charlie, dave, pool):
    assert _get(client, dave, project, label="one").status_code == 403
    assert _get(client, charlie, project, label="one").status_code == 404


def test_the_project_page_links_labelers_to_the_grid(client, project, bob, dave):
    url = reverse("bulk", args=[project.pk])
    client.force_login(bob)
    assert f'href="{url}"' in client.get(reverse("project-detail", args=[project.pk])).content.decode()
    client.force_login(dave)
    assert f'href="{url}"' not in client.get(reverse("project-detail", args=[project.pk])).content.decode()
