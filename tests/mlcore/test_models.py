import numpy as np
import torch

from mlcore.config import EncoderConfig, PretrainConfig
from mlcore.models.encoders import build_encoder
from mlcore.models.heads import ClassifierHead
from mlcore.pretrain import pretrain


def test_resnet18_small_stem_and_adapters_start_as_identity():
    torch.manual_seed(0)
    plain = build_encoder(EncoderConfig(arch="resnet18", in_channels=3, input_size=32))
    adapted = build_encoder(EncoderConfig(arch="resnet18", in_channels=3, input_size=32, adapters=True))
    missing = adapted.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("adapters.") for k in missing)
    x = torch.rand(2, 3, 32, 32)
    plain.eval(), adapted.eval()
    with torch.no_grad():
        assert plain(x).shape == (2, 512)
        assert torch.allclose(plain(x), adapted(x), atol=1e-5)


def test_small_cnn_output_dim_and_mc_dropout():
    enc = build_encoder(EncoderConfig(widths=(8, 16, 24), input_size=20))
    h = enc(torch.rand(4, 1, 20, 20))
    assert h.shape == (4, 24) and enc.out_dim == 24
    head = ClassifierHead(24, 3, dropout=0.5).eval()
    mc = head.mc_probs(h.detach(), samples=6)
    assert mc.shape == (6, 4, 3)
    assert not torch.allclose(mc[0], mc[1])  # dropout stays on under mc
    assert torch.allclose(head(h), head(h))  # and off in eval otherwise


def test_byol_pretraining_runs(mnist_small):
    x, _ = mnist_small
    enc, emb = pretrain(x[:128], EncoderConfig(widths=(8, 16, 16), input_size=16),
                        PretrainConfig(method="byol", epochs=2, batch_size=64), device="cpu")
    assert emb.shape == (128, 16) and np.isfinite(emb).all()
