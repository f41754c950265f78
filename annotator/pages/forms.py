"""Forms of the HTML pages. Validation that touches several models stays in the domain packages
(annotator.projects, annotator.labeling)."""
import re

from django import forms

from annotator.models import Role, Strategy
from annotator.projects.changes import MULTI_LABEL_FIXED
from annotator.projects.instructions import MAX_DESCRIPTION_CHARS, MAX_EXAMPLES, MAX_INSTRUCTIONS_CHARS


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

    multi_label = forms.BooleanField(
        required=False, label="Multi-label",
        help_text="Each image gets a set of classes (any number, or none) instead of exactly one. "
                  "Chosen now: it cannot be changed after the project is created.",
    )

    def clean_classes(self):
        return [line.strip() for line in self.cleaned_data["classes"].splitlines() if line.strip()]

    OPTION_FIELDS = ("strategy", "query_batch_size", "audit_fraction", "annotations_per_item", "review_fraction",
                     "multi_label")

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
        options = {f: self.cleaned_data[f] for f in self.OPTION_FIELDS if self.cleaned_data[f] is not None}
        options.pop("multi_label", None)
        return {"name": self.cleaned_data["name"], **options}


class ClassForm(forms.Form):
    name = forms.CharField(max_length=100)


class LabelImportForm(forms.Form):
    file = forms.FileField(help_text="A UTF-8 CSV with the header file,class.")


class LabelStudioImportForm(forms.Form):
    file = forms.FileField(help_text="Label Studio's JSON export: a list of tasks.")


class SuggestionImportForm(forms.Form):
    file = forms.FileField(help_text="A UTF-8 CSV with the header file,class,score.")
    source = forms.CharField(required=False, max_length=100,
                             help_text="The name the guesses are shown with (default: the file's name).")
class InstructionsForm(forms.Form):
    """The instructions (Markdown) and, per class, a description and example item numbers
    (`description_<class id>`, `examples_<class id>`)."""

    markdown = forms.CharField(
        label="Instructions", required=False, strip=False, max_length=MAX_INSTRUCTIONS_CHARS,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "# What to label\n\nLabel the **largest** object…"}),
        help_text="Markdown: <code>**bold**</code>, lists, links, tables. Shown to annotators on their first visit, "
                  "after each change, and on the <kbd>I</kbd> key.",
    )

    max_examples = MAX_EXAMPLES

    def __init__(self, data=None, *, classes, initial=None):
        super().__init__(data, initial=initial)
        self.classes = classes
        for label in classes:
            self.fields[f"description_{label.pk}"] = forms.CharField(
                label=f"Description of {label.name}", required=False, strip=False, max_length=MAX_DESCRIPTION_CHARS,
                widget=forms.Textarea(attrs={"rows": 2}),
            )
            self.fields[f"examples_{label.pk}"] = forms.CharField(
                label=f"Example images of {label.name}", required=False, max_length=400,
                help_text=f"Image numbers (shown as #12 on the labeling page), at most {MAX_EXAMPLES}.",
            )

    @classmethod
    def for_project(cls, project, data=None):
        classes = list(project.classes.prefetch_related("examples").order_by("order", "id"))
        initial = {"markdown": project.instructions}
        for label in classes:
            initial[f"description_{label.pk}"] = label.description
            initial[f"examples_{label.pk}"] = ", ".join(str(i.pk) for i in sorted(label.examples.all(), key=lambda i: i.pk))
        return cls(data, classes=classes, initial=initial)

    def clean(self):
        data = super().clean()
        for label in self.classes:
            name = f"examples_{label.pk}"
            words = [w.lstrip("#") for w in re.split(r"[\s,;]+", data.get(name) or "") if w]
            if any(not w.isdigit() or len(w) > 18 for w in words):
                self.add_error(name, "Type image numbers such as 12, 40 (the #number next to an image's name).")
            else:
                data[name] = [int(w) for w in words]
        return data

    def rows(self):
        """(class, its description field, its examples field) for the template."""
        return [(label, self[f"description_{label.pk}"], self[f"examples_{label.pk}"]) for label in self.classes]

    def changes(self):
        """update_instructions' arguments."""
        return {
            "markdown": self.cleaned_data["markdown"].replace("\r\n", "\n"),
            "classes": [
                {"id": label.pk, "description": self.cleaned_data[f"description_{label.pk}"].replace("\r\n", "\n"),
                 "examples": self.cleaned_data[f"examples_{label.pk}"]}
                for label in self.classes
            ],
        }
