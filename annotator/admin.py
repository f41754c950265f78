from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import redirect
from django.urls import reverse

from annotator.models import (
    Annotation,
    AnnotationChange,
    ApiToken,
    Item,
    Job,
    LabelClass,
    Lease,
    Membership,
    Project,
    Review,
)


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "strategy", "query_batch_size", "audit_fraction", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [LabelClassInline, MembershipInline]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "pool_index", "original_name", "width", "height", "label_count", "done"]
    list_filter = ["project", "done"]
    search_fields = ["original_name", "content_hash"]
    readonly_fields = ["content_hash", "image", "display_image"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "label", "skipped", "source", "undone", "is_audit", "created_at"]
    list_filter = ["skipped", "undone", "source", "is_audit"]
    raw_id_fields = ["item"]


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "item", "user", "expires_at", "is_audit"]
    raw_id_fields = ["item"]


# --- accounts: deactivated, never deleted with their labels ------------------------------

User = get_user_model()


def labeling_history(user):
    """What deleting the account would lose: its answers, its corrections and its reviews."""
    return (Annotation.objects.filter(annotator=user).exists()
            or AnnotationChange.objects.filter(changed_by=user).exists() or Review.objects.filter(reviewer=user).exists())


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by owner; only their hash is stored, so the admin can revoke but never read one."""

    list_display = ["prefix", "user", "name", "created_at", "expires_at", "last_used_at"]
    search_fields = ["user__username", "prefix", "name"]
    readonly_fields = ["user", "key_hash", "prefix", "name", "created_at", "expires_at", "last_used_at"]

    def has_add_permission(self, request):
        return False  # a token's value is shown once, to its owner: /api/auth/token/ or the account page


admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Django's user admin, except that accounts with labels are deactivated instead of
    deleted (their answers are PROTECTed: deleting took them away while their items stayed
    counted as labeled and done)."""

    actions = ["deactivate"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting several accounts: deactivate them instead
        return actions

    @admin.action(description="Deactivate the selected accounts (they can no longer sign in; their labels stay)")
    def deactivate(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True):
            user.is_active = False
            user.save()  # save(), not update(): the receivers in models.py revoke the tokens
            count += 1
        self.message_user(request, f"Deactivated {count} account{'s' if count != 1 else ''}.", messages.SUCCESS)

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is not None and labeling_history(user):
            self.message_user(
                request,
                f"{user} has labels or corrections in projects, which must stay: the account cannot be deleted. "
                "Deactivate it instead (untick \"Active\" and save): they can no longer sign in or use API tokens, "
                "and their labels stay.",
                messages.ERROR,
            )
            return redirect(reverse(f"admin:{user._meta.app_label}_{user._meta.model_name}_change", args=[user.pk]))
        return super().delete_view(request, object_id, extra_context)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Background jobs, all projects and backups: read only (the worker writes them); deleting
    one deletes its files (annotator/signals.py)."""

    list_display = ("pk", "kind", "project", "status", "progress", "attempts", "created_by", "created_at", "message")
    list_filter = ("status", "kind")
    readonly_fields = [field.name for field in Job._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
