"""Everything the dashboard shows in one dict, for the page, the API and the benchmark."""
from annotator.dashboard.model_side import model_summary
from annotator.dashboard.progress import annotators, per_class, progress


def dashboard_summary(project, *, with_model=True):
    """Everything the dashboard page shows (six queries, plus the model's handful)."""
    rows, overall = annotators(project)
    classes = per_class(project)
    return {
        "progress": progress(project),
        "per_class": classes,
        "annotators": rows,
        "agreement": overall,
        "model": model_summary(project, classes) if with_model else None,
    }
