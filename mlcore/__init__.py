"""mlcore: the learning core of the annotator (pure Python/PyTorch, no Django).

Kept light on purpose: importing ``mlcore`` does not import torch or faiss.
The public entry points live in submodules and are re-exported lazily:

    from mlcore import ActiveLearner, LearnerConfig
"""

__version__ = "0.1.0"

_LAZY = {
    "ActiveLearner": "mlcore.learner",
    "LearnerConfig": "mlcore.config",
    "EncoderConfig": "mlcore.config",
    "PretrainConfig": "mlcore.config",
    "PropagationConfig": "mlcore.config",
    "FinetuneConfig": "mlcore.config",
    "AcquisitionConfig": "mlcore.config",
    "pretrain": "mlcore.pretrain",
    "embed": "mlcore.pretrain",
    "finetune": "mlcore.finetune",
    "cold_start": "mlcore.acquisition.coldstart",
    "rank": "mlcore.acquisition.rank",
    "save_checkpoint": "mlcore.checkpoint",
    "load_checkpoint": "mlcore.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlcore' has no attribute {name!r}")
