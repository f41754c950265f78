"""Signal receivers of the models, connected when the app is ready (apps.py): a deleted
project's files go, and a new password or a deactivated account revokes its API tokens."""
import logging
import shutil

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from annotator.models import ApiToken, Job, Project
from annotator.storage import delete_prefix, is_local, media_storage

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Project, dispatch_uid="remove_project_files")
def _remove_project_files(sender, instance, using, **kwargs):
    """A deleted project's files go once the deletion is committed (a rolled-back deletion
    keeps them), however it was deleted: the admin, a queryset, the shell."""
    pk = instance.pk  # the deletion sets it to None before the commit
    folders = Project.file_folders(pk) + Project.cache_folders(pk)

    def remove():
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        storage = media_storage()
        if not is_local(storage):  # its objects in the bucket (never those imported in place)
            for prefix in Project.storage_prefixes(pk):
                try:
                    delete_prefix(storage, prefix)
                except Exception:
                    log.exception("Deleting the objects of project %s under %s failed", pk, prefix)

    transaction.on_commit(remove, using=using)


@receiver(post_delete, sender=Job, dispatch_uid="remove_job_files")
def _remove_job_files(sender, instance, using, **kwargs):
    """A deleted job's files (its uploads, its export) go once the deletion is committed;
    a project's deletion deletes its jobs, and so their files in any storage."""
    names = instance.stored_files()

    def remove():
        for name in names:
            try:
                default_storage.delete(name)
            except Exception:  # noqa: BLE001 - `cleanup` finds what is left
                log.warning("Could not delete %s of deleted job %s", name, instance.pk, exc_info=True)

    if names:
        transaction.on_commit(remove, using=using)


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def _note_credential_change(sender, instance, update_fields=None, **kwargs):
    """Marks a save that changes the password hash or deactivates the account (whoever
    saves: the password change page, the admin, `changepassword`, set_unusable_password)."""
    instance._revokes_tokens = False
    if instance.pk is None or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return  # a new account, or a save of other fields (last_login at each sign-in)
    before = sender._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    # check_password() re-hashes a correct password when the hasher's parameters changed (a
    # Django upgrade) and saves only the password, with the raw password already forgotten:
    # the same password, so the tokens stay. set_password() then save() keeps the raw one.
    rehash = getattr(instance, "_password", None) is None and update_fields is not None and set(update_fields) == {
        "password"
    }
    new_password = before["password"] != instance.password and not rehash
    instance._revokes_tokens = new_password or (before["is_active"] and not instance.is_active)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _revoke_tokens_on_credential_change(sender, instance, **kwargs):
    if getattr(instance, "_revokes_tokens", False):
        ApiToken.objects.filter(user=instance).delete()
        instance._revokes_tokens = False
