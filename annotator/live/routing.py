"""Websocket routes: one socket per open project page for live status and queue events."""
from django.urls import path

from annotator.live.consumers import ProjectConsumer

websocket_urlpatterns = [
    path("ws/projects/<int:pk>/", ProjectConsumer.as_asgi()),
]
