"""Live updates for a project's pages: trainer status and queue changes over one websocket.

The group messages come from `annotator.events` (STATUS -> `trainer_status`, QUEUE ->
`queue_updated`); each is forwarded to the browser as ``{"type": "status", ...}`` or
``{"type": "queue", ...}``.
"""
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from annotator import events
from annotator.access import project_for
from annotator.modelloop.status import trainer_status


@database_sync_to_async
def _project_for_member(user, project_id):
    """The project when `user` is a member of any role, else None (the socket is refused)."""
    try:
        return project_for(user, project_id)
    except Http404:
        return None


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    project = None

    async def connect(self):
        pk = self.scope["url_route"]["kwargs"]["pk"]
        self.group = events.group_name(pk)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.project = await _project_for_member(user, pk)
        if self.project is None:
            await self.close()  # before accept: the browser sees a refused handshake
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_status()  # a reconnecting page resynchronises at once

    async def disconnect(self, code):
        if self.project is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_status(self):
        status = await database_sync_to_async(trainer_status)(self.project)
        await self.send_json({"type": "status", "status": status})

    async def trainer_status(self, event):
        await self.send_json({"type": "status", "status": event["status"]})

    async def queue_updated(self, event):
        await self.send_json({"type": "queue", "version": event["version"]})

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Ignore what the page never sends (binary frames, bad JSON, non-objects) instead of
        letting the base class raise and drop the socket."""
        try:
            content = json.loads(text_data or "")
        except ValueError:
            return
        if isinstance(content, dict):
            await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        elif content.get("type") == "status":
            await self.send_status()
