from django.contrib import admin

from annotator.models import Annotation, Item, LabelClass, Lease, Membership, Project


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
