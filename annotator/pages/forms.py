"""Forms of the HTML pages. Validation that touches several models stays in the domain packages
(annotator.projects, annotator.labeling)."""
from django import forms

from annotator.models import Role, Strategy
from annotator.projects.changes import MULTI_LABEL_FIXED


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    classes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "cat\ndog\nbird"}),
        help_text="One class per line, in the order the buttons should appear (hotkeys 1-9 follow it).",
    )
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.AUTO)
    query_batch_size = forms.IntegerField(
        min_value=1, max_value=1000, initial=10,
        help_text="How many items the model picks per round of re-ranking.",
    )
    audit_fraction = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.1,
        help_text="Share of items drawn at random to measure the model honestly (0 to 1).",
    )
    annotations_per_item = forms.IntegerField(
        min_value=1, max_value=20, initial=1,
        help_text="How many annotators must label an item before it is done.",
    )

    multi_label = forms.BooleanField(
        required=False, label="Multi-label",
        help_text="Each image gets a set of classes (any number, or none) instead of exactly one. "
                  "Chosen now: it cannot be changed after the project is created.",
    )

    def clean_classes(self):
        return [line.strip() for line in self.cleaned_data["classes"].splitlines() if line.strip()]

    OPTION_FIELDS = ("strategy", "query_batch_size", "audit_fraction", "annotations_per_item", "multi_label")

    def project_options(self):
        """The Project fields beyond name and classes, for projects.changes.create_project."""
        return {field: self.cleaned_data[field] for field in self.OPTION_FIELDS}


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the token is for (a script, a machine).")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)



class SettingsForm(ProjectForm):
    """The project's settings page: ProjectForm without the class list (classes have their own forms)."""

    classes = None
    multi_label = forms.BooleanField(
        required=False, disabled=True, label="Multi-label",
        help_text="Chosen when the project was created; it cannot be changed.",
    )

    @classmethod
    def for_project(cls, project, data=None):
        initial = {field: getattr(project, field) for field in ("name", *cls.OPTION_FIELDS)}
        return cls(data, initial=initial)

    def clean(self):
        # The field is shown disabled; a post that tries to change it anyway is refused, not ignored.
        cleaned = super().clean()
        if self.is_bound and "multi_label" in self.data:
            wanted = self.fields["multi_label"].widget.value_from_datadict(self.data, self.files, "multi_label")
            if bool(wanted) != bool(self.initial.get("multi_label")):
                self.add_error("multi_label", MULTI_LABEL_FIXED)
        return cleaned

    def settings(self):
        options = self.project_options()
        options.pop("multi_label")
        return {"name": self.cleaned_data["name"], **options}


class ClassForm(forms.Form):
    name = forms.CharField(max_length=100)


class LabelImportForm(forms.Form):
    file = forms.FileField(help_text="A UTF-8 CSV with the header file,class.")
