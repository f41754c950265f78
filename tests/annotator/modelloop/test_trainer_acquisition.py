"""`auto` in the running app: typical points of uncovered clusters until the cold start's
label count (lowered here to 2 labels per class), then the post-cold-start strategy."""
import numpy as np

from annotator.modelloop import bridge
from annotator.modelloop.trainer import Trainer
from annotator.models import QueueEntry
from mlcore import embedding_learner, presets
from mlcore.acquisition.rank import AUTO_STRATEGY
from tests.annotator.modelloop.trainer_helpers import label_served


def test_auto_leaves_the_cold_start_at_its_threshold(shapes, bob, monkeypatch):
    monkeypatch.setattr(bridge, "TYPICAL_LABELS_PER_CLASS", 2)  # 6 labels for the 3 shapes
    monkeypatch.setattr(presets, "TYPICAL_LABELS_PER_CLASS", 2)  # (new_config reads it there)
    shapes.query_batch_size = 3  # a batch is re-ranked once all of it is answered
    shapes.save(update_fields=["query_batch_size"])
    branches, served = [], []  # (branch, labels) per ranking; (learner, asked, picks)
    learner_rank, rank_fn = embedding_learner.EmbeddingLearner.rank, embedding_learner.rank

    def spy_learner_rank(self, n, labels, strategy=None, seed=None):
        picks = learner_rank(self, n, labels, strategy, seed)
        served.append((self, np.array(labels), picks))
        if len(branches) < len(served):  # rank() was not called: the cold start answered
            branches.append(("cold start", int((np.asarray(labels) >= 0).sum())))
        return picks

    def spy_rank(probs, emb, labels, n, strategy, *args, **kwargs):
        branches.append((strategy, int((labels >= 0).sum())))
        return rank_fn(probs, emb, labels, n, strategy, *args, **kwargs)

    monkeypatch.setattr(embedding_learner.EmbeddingLearner, "rank", spy_learner_rank)
    monkeypatch.setattr(embedding_learner, "rank", spy_rank)
    trainer = Trainer("t1", publish=lambda *a: None)
    trainer.run_once()
    trainer.run_once()
    label_served(shapes, bob, 3)
    trainer.run_once()
    assert branches == [("cold start", 0), ("cold start", 3)]
    label_served(shapes, bob, 3, prefix="six")
    trainer.run_once()
    assert branches[-1] == ("auto", 6) and len(branches) == 3
    learner, asked, picks = served[-1]
    queue = [q.item.pool_index for q in QueueEntry.objects.filter(project=shapes).order_by("rank")]
    assert queue == picks.tolist()
    # what the queue holds now is the post-cold-start strategy's batch, not the cold start's
    cfg = learner.cfg.acquisition
    assert cfg.cold_start_until == 6
    again = rank_fn(learner.last.probs, learner.embeddings, asked, len(picks), AUTO_STRATEGY, cfg,
                    learner._mc_probs, learner.cfg.seed, graph=learner.graph, propagation=learner.cfg.propagation)
    assert again.tolist() == picks.tolist()
    assert learner.cold_start(len(picks), asked).tolist() != picks.tolist()
