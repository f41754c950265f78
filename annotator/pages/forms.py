"""Forms of the HTML pages. Validation that touches several models stays in the domain packages
(annotator.projects, annotator.labeling)."""
from django import forms

from annotator.models import Role, Strategy


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
    review_fraction = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.0, required=False,
        help_text="Share of each annotator's answers drawn at random for review (0 to 1; 0: none; empty: unchanged).",
    )
    none_class = forms.CharField(
        max_length=100, required=False, label="“None of these” class",
        help_text="Optional: a name (e.g. none) adds an exclusive class for images that fit no other, "
                  "with its own button and key N. Leave empty for none.",
    )

    def clean_classes(self):
        return [line.strip() for line in self.cleaned_data["classes"].splitlines() if line.strip()]

    OPTION_FIELDS = ("strategy", "query_batch_size", "audit_fraction", "annotations_per_item", "review_fraction")

    def project_options(self):
        """The Project fields beyond name and classes, for projects.changes.create_project."""
        options = {f: self.cleaned_data[f] for f in self.OPTION_FIELDS if self.cleaned_data[f] is not None}
        if self.cleaned_data.get("none_class", "").strip():
            options["none_class"] = self.cleaned_data["none_class"].strip()
        return options


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What the token is for (a script, a machine).")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)



class SettingsForm(ProjectForm):
    """The project's settings page: ProjectForm without the class list (classes have their own forms)."""

    classes = None
    none_class = None  # the classes region of the settings page turns it on and off

    @classmethod
    def for_project(cls, project, data=None):
        initial = {field: getattr(project, field) for field in ("name", *cls.OPTION_FIELDS)}
        return cls(data, initial=initial)

    def settings(self):
        return {"name": self.cleaned_data["name"],
                **{f: self.cleaned_data[f] for f in self.OPTION_FIELDS if self.cleaned_data[f] is not None}}


class ClassForm(forms.Form):
    name = forms.CharField(max_length=100)


class LabelImportForm(forms.Form):
    file = forms.FileField(help_text="A UTF-8 CSV with the header file,class.")
