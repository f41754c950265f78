"""Exports. Importing the package loads every family module, so the registry is complete."""
from importlib import import_module

# The modules that register formats, in the order the formats are listed (page, API, command).
FAMILIES = ("labels", "imagefolder", "fiftyone", "labelstudio", "model_files")

for _family in FAMILIES:
    import_module(f"{__name__}.{_family}")
