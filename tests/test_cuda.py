"""The GPU paths: the same maths on CUDA, bf16 autocast, fused AdamW, torch.compile, checkpoints across devices.

Skipped where no CUDA GPU is present (CI); run on a GPU machine with ``python -m pytest tests/test_cuda.py``.
"""

import pytest
import torch

import minitx.functional as mf
from minitx import LMConfig
from minitx.checkpoint import load_model
from minitx.lm_train import LMTrainSettings, train_lm
from minitx.nn import LM
from minitx.runtime import autocast, make_optimizer, maybe_compile
from minitx.sample import sample

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def qkv_and_mask(b=3, heads=2, t=70, s=16, dtype=torch.float32):
    """Random q, k, v (b, heads, t, s) on CUDA and a right-padding key mask (b, 1, 1, t); t > 64 spans two
    query blocks of the scratch kernel."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, heads, t, s, generator=generator, dtype=dtype).to(CUDA) for _ in range(3))
    lengths = torch.tensor([t, t - 5, 9])
    mask = (torch.arange(t)[None, :] < lengths[:, None])[:, None, None, :].to(CUDA)   # (b, 1, 1, t)
    return q, k, v, mask


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_attend_on_cuda_equals_the_cpu_core_forward_and_backward(causal, backend):
    """float64, so any difference is a bug, not rounding; the CPU core is checked against loops elsewhere."""
    q, k, v, mask = qkv_and_mask(dtype=torch.float64)
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    out = mf.attend(q, k, v, mask=mask, causal=causal, backend=backend)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    cpu = [x.detach().cpu().requires_grad_() for x in (q, k, v)]
    expected = mf.attend(*cpu, mask=mask.cpu(), causal=causal)
    expected_grads = torch.autograd.grad(expected.square().sum(), cpu)
    torch.testing.assert_close(out.cpu(), expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad.cpu(), expected_grad)


def test_scratch_kernel_under_bf16_autocast_is_close_to_float32():
    q, k, v, mask = qkv_and_mask()
    q.requires_grad_()
    with autocast(CUDA):
        low = mf.attend(q, k, v, mask=mask, causal=True)
    low.float().sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    full = mf.attend(q.detach(), k, v, mask=mask, causal=True)
    torch.testing.assert_close(low.float(), full, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_lm_module_on_cuda_equals_the_cpu_model_and_cached_sampling_equals_rerunning(backend):
    config = LMConfig(vocab=13, emb=32, heads=4, depth=2, context=24, backend=backend)
    cpu_model = LM(config, torch.Generator().manual_seed(0)).eval()
    gpu_model = LM(config, torch.Generator().manual_seed(0)).to(CUDA).eval()
    tokens = torch.randint(13, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(gpu_model(tokens.to(CUDA)).cpu(), cpu_model(tokens), atol=1e-4, rtol=1e-4)
    seed = tokens[0, :5]
    cached = sample(gpu_model, seed, 30, temperature=0)           # slides past the context of 24
    assert cached.device.type == "cuda"
    assert torch.equal(cached, sample(gpu_model, seed, 30, temperature=0, use_cache=False))
    drawn = sample(gpu_model, seed, 10, generator=torch.Generator().manual_seed(2))   # a CPU generator works
    assert drawn.shape == (15,)


def test_compiled_model_matches_eager_and_its_weights_load_into_a_plain_model():
    config = LMConfig(vocab=13, emb=32, heads=4, depth=2, context=16, backend="sdpa")
    model = LM(config, torch.Generator().manual_seed(0)).to(CUDA).eval()
    compiled = maybe_compile(model, True)
    tokens = torch.randint(13, (2, 16), device=CUDA)
    with torch.no_grad():
        torch.testing.assert_close(compiled(tokens), model(tokens), atol=1e-4, rtol=1e-4)
    plain = LM(config).to(CUDA)
    plain.load_state_dict(model.state_dict())
    assert all(not key.startswith("_orig_mod.") for key in model.state_dict())


def test_optimizer_is_fused_on_cuda():
    model = LM(LMConfig(vocab=13, emb=32, heads=4, depth=1, context=8)).to(CUDA)
    optimizer = make_optimizer(dict(model.named_parameters()), lr=1e-3, weight_decay=0.1)
    assert all(group["fused"] for group in optimizer.param_groups)


@pytest.mark.parametrize("compiled", [False, True])
def test_lm_trains_on_cuda_with_bf16_and_its_checkpoint_loads_on_cpu(tmp_path, compiled):
    stream = torch.arange(4000) % 7                      # a periodic stream: learnable to ~0 bits
    config = LMConfig(vocab=7, emb=32, heads=2, depth=2, context=16, backend="sdpa")
    settings = LMTrainSettings(batch=16, steps=150, lr=3e-3, warmup=10, log_every=50, eval_every=150,
                               sample_every=150, eval_batches=4, final_eval="estimate", compile=compiled,
                               device="cuda")
    result = train_lm(config, stream, stream, settings, out=tmp_path, quiet=True)
    assert result.summary["final_estimate_bits"] < 0.5
    assert all(rate > 0 for _, rate in result.log.series["tokens_per_s"])
    model, _ = load_model(tmp_path / "checkpoint.pt", device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_classifier_trainer_runs_on_cuda():
    from minitx.classify import TrainSettings, load_dataset, model_config, train_classifier

    data = load_dataset("xor", ntrain=2000, nval=500)
    config = model_config("full", vocab=len(data.i2w), emb=32, pool="select", positions=True, heads=2)
    result = train_classifier(config, data, TrainSettings(epochs=3, batch=32, device="cuda", progress=False))
    assert result.device.startswith("cuda")
    assert result.accuracy > 0.5          # XOR with positions is learnable; chance is 0.5
