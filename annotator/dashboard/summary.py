"""Everything the dashboard shows in one dict, for the page, the API and the benchmark."""
from annotator.dashboard.model_side import model_summary
from annotator.dashboard.progress import annotators, per_class, progress
from annotator.dashboard.reliability import label_alpha, with_review_accuracy


def dashboard_summary(project, *, with_model=True):
    """Everything the dashboard page shows (eight queries, nine once a review exists, plus the model's handful)."""
    rows, overall = annotators(project)
    classes = per_class(project)
    return {
        "progress": progress(project),
        "per_class": classes,
        "annotators": with_review_accuracy(project, rows),
        "agreement": {**overall, "krippendorff": label_alpha(project)},
        "model": model_summary(project, classes) if with_model else None,
    }
