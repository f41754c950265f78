"""The data model: projects with ordered classes, memberships, pool items, annotations, leases.

Domain verbs that touch one model live here; multi-model writes live in the packages of
their domain (`annotator.projects`, `labeling`, `importing`, `modelloop`).
"""
import hashlib
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.text import slugify

from annotator.storage import item_storage

# Keys the labeling page keeps: skip, undo, accept the guess, original size (o), instructions (i),
# unsure and the "none of these" class (docs/labeling.md, Keys: a class that already holds one keeps it).
UNSURE_HOTKEY, NONE_HOTKEY = "m", "n"
RESERVED_HOTKEYS = {"s", "u", "z", "a", "?", "o", "i", UNSURE_HOTKEY, NONE_HOTKEY}
DIGIT_HOTKEYS = [str(d) for d in range(1, 10)]
LETTER_HOTKEYS = [c for c in "qwertyiopdfghjklxcvbnm" if c not in RESERVED_HOTKEYS]


def default_hotkeys(names):
    """Hotkeys for the classes, in order: each name itself when every name is one distinct key
    the page does not reserve (digits 0-9, say); otherwise 1-9, then unreserved letters."""
    own = [name.lower() for name in names]
    if all(len(k) == 1 and k.isalnum() and k not in RESERVED_HOTKEYS for k in own) and len(set(own)) == len(own):
        return own
    keys = DIGIT_HOTKEYS + LETTER_HOTKEYS
    return [keys[i] if i < len(keys) else "" for i in range(len(names))]


class Strategy(models.TextChoices):
    RANDOM = "random", "Random"
    ENTROPY = "entropy", "Entropy"
    MARGIN = "margin", "Margin"
    LEAST_CONFIDENCE = "least-confidence", "Least confidence"
    BALD = "bald", "BALD"
    AUTO = "auto", "Auto (cold start, then the best-measured strategy)"


class Encoder(models.TextChoices):
    """What turns a project's images into embeddings. `auto`: the best pretrained backbone
    whose weights are on the server, for photos; self-supervised pretraining on the
    project's own images otherwise (digits, scans, micrographs) or when no weights are
    present. The pretrained names are mlcore's encoder catalog's (a test checks); the timm
    and open_clip ones can be chosen only where their packages are installed."""

    AUTO = "auto", "Auto (a pretrained backbone for photos when its weights are present)"
    SELF_SUPERVISED = "self-supervised", "Self-supervised on this project's images"
    RESNET18 = "resnet18", "ResNet-18 (ImageNet, torchvision)"
    RESNET50 = "resnet50", "ResNet-50 (ImageNet, torchvision)"
    CONVNEXT_TINY = "convnext_tiny", "ConvNeXt-Tiny (ImageNet, torchvision)"
    VIT_B_16 = "vit_b_16", "ViT-B/16 (ImageNet, torchvision)"
    DINOV2_VITS14 = "dinov2_vits14", "DINOv2 ViT-S/14"
    DINOV2_VITB14 = "dinov2_vitb14", "DINOv2 ViT-B/14"
    CLIP_VIT_B_32 = "open_clip/ViT-B-32", "CLIP ViT-B/32 (LAION-2B, open_clip; zero-shot guesses)"
    CLIP_VIT_B_16 = "open_clip/ViT-B-16", "CLIP ViT-B/16 (LAION-2B, open_clip; zero-shot guesses)"
    TIMM_VIT_SMALL = "timm/vit_small_patch16_224", "ViT-S/16 (ImageNet-21k, timm)"
    TIMM_CONVNEXT_TINY = "timm/convnext_tiny", "ConvNeXt-Tiny (ImageNet-12k, timm)"
    TIMM_EFFICIENTNET_B0 = "timm/efficientnet_b0", "EfficientNet-B0 (ImageNet, timm)"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.AUTO)
    query_batch_size = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    audit_fraction = models.FloatField(default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # Share of each annotator's answers drawn at random for review (annotator.review.queue).
    review_fraction = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    annotations_per_item = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(20)])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Steering the model loop (owners, in the settings): a paused project keeps its model and
    # queue but the trainer runs nothing for it; a reset bumps the generation, and trainers
    # drop every model of an older generation and start over (from `init_checkpoint`, an
    # uploaded encoder relative to ARTIFACTS_ROOT, when one is set).
    training_paused = models.BooleanField(default=False)
    encoder = models.CharField(max_length=32, choices=Encoder.choices, default=Encoder.AUTO)
    model_generation = models.PositiveIntegerField(default=0)
    init_checkpoint = models.CharField(max_length=300, blank=True)
    init_checkpoint_name = models.CharField(max_length=255, blank=True)  # the uploaded file's name
    # Multi-label: an answer is a set of classes (Annotation.labels; an empty set means none
    # applies) instead of one class. Chosen at creation and never changed afterwards.
    multi_label = models.BooleanField(default=False)
    instructions = models.TextField(blank=True)  # Markdown (projects/instructions.py renders it)
    instructions_version = models.PositiveIntegerField(default=0)  # +1 per edit: shown again to members
    # A bucket the project's images are imported from in place (importing/bucket.py): read
    # with the server's credentials, never copied. Empty: none.
    source_bucket = models.CharField(max_length=63, blank=True)
    source_prefix = models.CharField(max_length=900, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("project-detail", args=[self.pk])

    @staticmethod
    def unique_slug(name):
        base = slugify(name)[:60] or "project"
        slug = base
        while Project.objects.filter(slug=slug).exists():
            slug = f"{base}-{secrets.token_hex(3)}"
        return slug

    def ordered_classes(self):
        return list(self.classes.order_by("order", "id"))

    def class_names(self):
        return [c.name for c in self.ordered_classes()]

    @staticmethod
    def file_folders(pk):
        """The folders holding a project's files: its images and its model files."""
        return [Path(settings.MEDIA_ROOT) / "items" / str(pk), Path(settings.ARTIFACTS_ROOT) / "projects" / str(pk)]

    @staticmethod
    def cache_folders(pk):
        """This machine's rebuildable copies of a project's files (modelloop.shared): pixel
        and embedding stores under CACHE_DIR, model files downloaded from the bucket."""
        roots = [Path(settings.ARTIFACTS_ROOT)] + ([Path(settings.CACHE_DIR)] if settings.CACHE_DIR else [])
        return [root / sub / str(pk) for root in roots for sub in ("projects", "shared/projects")][1:]

    @staticmethod
    def storage_prefixes(pk):
        """The key prefixes of a project's objects in a bucket storage: its images and the
        model files its trainers share (annotator.modelloop.shared)."""
        return [f"items/{pk}/", f"artifacts/projects/{pk}/", f"exports/{pk}/"]

    def role_of(self, user):
        """The user's role in this project, or None for outsiders and anonymous users."""
        if not user.is_authenticated:
            return None
        membership = self.memberships.filter(user=user).only("role").first()
        return membership.role if membership else None


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=100)
    order = models.PositiveIntegerField(default=0)
    hotkey = models.CharField(max_length=1, blank=True)
    description = models.TextField(blank=True)  # Markdown, shown with the instructions
    examples = models.ManyToManyField("Item", blank=True, related_name="example_of")  # this project's items
    is_none = models.BooleanField(default=False)  # "none of these": single-label projects, always last

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_class_name_per_project"),
            models.UniqueConstraint(fields=["project"], condition=Q(is_none=True), name="one_none_class_per_project"),
        ]

    def __str__(self):
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)
    instructions_seen = models.PositiveIntegerField(default=0)  # the project's instructions_version last shown

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="unique_membership"),
        ]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.project}"


def item_upload_path(instance, filename):
    # Server-chosen names only: the content hash, never the uploaded name.
    return f"items/{instance.project_id}/{instance.content_hash[:2]}/{filename}"


class Item(models.Model):
    """One image of the pool. `priority` orders the queue (lower first); the import draws it
    at random, and the model loop rewrites it when it ranks the pool."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    # Through annotator.storage.ItemStorage: a key of the configured storage (local files or the
    # bucket), or `s3://bucket/key` for an image imported in place from a bucket (S3 keys run
    # to 1,024 bytes).
    image = models.FileField(upload_to=item_upload_path, max_length=1100, storage=item_storage)
    display_image = models.FileField(upload_to=item_upload_path, max_length=300, blank=True, storage=item_storage)
    content_hash = models.CharField(max_length=64)
    original_name = models.CharField(max_length=255, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    pool_index = models.PositiveIntegerField()
    priority = models.FloatField(default=0.0)
    label_count = models.PositiveIntegerField(default=0)
    done = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # An owner looked at the item's labels (a suspect label kept, or corrected): the
    # dashboard no longer lists it as suspect.
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A guess from another tool ({"label", "score", "source"}; importing.suggestions), shown
    # with the item while the project's model has no guess for it.
    external_suggestion = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["pool_index"]
        constraints = [
            models.UniqueConstraint(fields=["project", "content_hash"], name="unique_item_hash_per_project"),
            models.UniqueConstraint(fields=["project", "pool_index"], name="unique_pool_index_per_project"),
        ]
        indexes = [models.Index(fields=["project", "done", "priority"], name="item_queue_idx")]

    def __str__(self):
        return f"item {self.pk} ({self.original_name or self.content_hash[:12]})"

    def image_url(self):
        return reverse("item-image", args=[self.project_id, self.pk])


class Annotation(models.Model):
    """A human answer: a class (single-label projects), a set of classes in `labels`
    (multi-label projects; `label` stays empty), a skip, or "unsure" (a skip that sends the
    item to review). Undo marks it undone instead of deleting it, so the history and the
    idempotency key survive."""

    class Source(models.TextChoices):
        HUMAN = "human", "Labeled in the app"
        IMPORT = "import", "Imported with the images"
        BULK = "bulk", "Labeled in bulk from the graph"
        REVIEW = "review", "Given by a reviewer"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    # PROTECT: a user with answers is deactivated, never deleted (deleting took their labels
    # while the items kept label_count and done).
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    label = models.ForeignKey(LabelClass, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations")
    labels = models.ManyToManyField(
        LabelClass, through="AnnotationLabel", blank=True, related_name="multi_annotations"
    )  # multi-label projects only
    skipped = models.BooleanField(default=False)
    unsure = models.BooleanField(default=False)  # always a skip: out of training until reviewed
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.HUMAN)
    batch = models.CharField(max_length=64, blank=True)  # a bulk answer's batch: undone together
    idempotency_key = models.CharField(max_length=100)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    suggestion = models.JSONField(null=True, blank=True)  # the model's guess shown at serve time
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the version that made the guess
    is_audit = models.BooleanField(default=False)
    undone = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["annotator", "idempotency_key"], name="unique_idempotency_key"),
            models.UniqueConstraint(
                fields=["item", "annotator"], condition=Q(undone=False), name="one_live_answer_per_annotator"
            ),
            # A skip has no class; "unsure" is a kind of skip. (That a single-label answer has
            # its class is the service's check: the constraint cannot see the project.)
            models.CheckConstraint(condition=Q(skipped=False) | Q(label__isnull=True), name="skip_has_no_label"),
            models.CheckConstraint(condition=Q(unsure=False) | Q(skipped=True), name="unsure_is_a_skip"),
        ]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="annotation_by_user_idx"),
            models.Index(fields=["batch"], condition=~Q(batch=""), name="annotation_batch_idx"),
        ]

    def __str__(self):
        answer = "unsure" if self.unsure else "skip" if self.skipped else self.label.name if self.label_id else (
            "{" + ", ".join(c.name for c in self.labels.all()) + "}")
        return f"{self.annotator} -> {answer} on item {self.item_id}"

    def clean(self):
        if self.label_id and self.label.project_id != self.item.project_id:
            raise ValidationError("The class belongs to another project.")


class AnnotationLabel(models.Model):
    """One class of a multi-label answer."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="label_links")
    label = models.ForeignKey(LabelClass, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["annotation", "label"], name="unique_label_per_answer")]


class Lease(models.Model):
    """An item held by one annotator until `expires_at` (the current item or the prefetched one)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leases")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="leases")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases")
    expires_at = models.DateTimeField()
    is_audit = models.BooleanField(default=False)
    suggestion = models.JSONField(null=True, blank=True)
    model_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="one_lease_per_item_and_user")]
        indexes = [models.Index(fields=["project", "user", "expires_at"], name="lease_by_user_idx")]


class AnnotationChange(models.Model):
    """One owner's correction or removal of an answer: the history shown with the annotation.
    Class names are copied, so the record stays readable after a class is renamed."""

    class Action(models.TextChoices):
        CORRECT = "correct", "Corrected"
        DELETE = "delete", "Deleted"

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(  # PROTECT, like Annotation.annotator: the history keeps who
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="annotation_changes"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    # A class name, or a multi-label answer's set as "{cat, dog}" ("{}": none applies), which
    # can be longer than one name: text. Empty for a skip (old) or a delete (new).
    old_label = models.TextField(blank=True)
    new_label = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.changed_by} {self.action} annotation {self.annotation_id}: {self.old_label!r} -> {self.new_label!r}"


def token_digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """An API token: only its SHA-256 and its first characters are stored, so a copy of the
    database holds no usable token (rest_framework.authtoken keeps the key itself). A token is
    40 random hex characters (160 bits): a fast hash is enough, and a deterministic one lets
    the lookup use the unique index. Tokens expire, and a new password or a deactivated
    account revokes them all (the receivers below)."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH)  # shown in lists so the owner can tell tokens apart
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "expires_at"], name="api_token_by_user_idx")]

    def __str__(self):
        return f"{self.prefix}... of {self.user}"

    @staticmethod
    def new_key():
        return secrets.token_hex(20)


# Tables in modules beside this one (its size limit), imported here so Django finds them.
from annotator.job_models import Job  # noqa: E402, F401
from annotator.loop_models import ModelVersion, QueueEntry, TrainerState  # noqa: E402, F401
from annotator.review_models import Review, ReviewLease  # noqa: E402, F401
