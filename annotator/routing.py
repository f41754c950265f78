"""Websocket routes (live status and queue events arrive with the model-loop issue)."""
websocket_urlpatterns = []
