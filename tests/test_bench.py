"""Smoke tests of the benchmark scripts: each entry point runs at tiny sizes and gives well-formed rows."""

import importlib.util
import json
import math

import pytest
import torch

from bench import common, context, gpu, profile_step, run_all, sampling, throughput

TINY_ARGS = ["--tiny", "--threads", "1"]
# PyTorch's private memory tracker (not in 2.2, say): without it CPU peak memory is NaN, printed "n/a"
HAS_MEM_TRACKER = importlib.util.find_spec("torch.distributed._tools.mem_tracker") is not None


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Run the throughput and context entry points once at tiny sizes, saving rows as run_all would."""
    results = tmp_path_factory.mktemp("bench")
    rows = throughput.main([*TINY_ARGS, "--repeats", "2", "--warmup", "0", "--json", str(results / "throughput.json")])
    context_rows = context.main([*TINY_ARGS, "--contexts", "8", "16", "--tokens", "32", "--repeats", "1",
                                 "--no-memory", "--json", str(results / "context.json")])
    return results, rows, context_rows


@pytest.mark.parametrize("name", list(common.WORKLOADS))
def test_copied_weights_compute_the_same_function(name):
    workload = common.tiny(common.WORKLOADS[name])
    differences = common.max_output_difference(workload)
    assert set(differences) == {"sdpa", "torch"}
    assert all(difference < 1e-5 for difference in differences.values()), differences
    # the check can fail: a torch copy of different weights is far off
    inputs, _ = common.make_batch(workload, torch.device("cpu"))
    other = common.TorchEncoderModel(common.minitx_model(workload, "scratch", seed=1))
    reference = common.build(workload, "scratch", torch.device("cpu"))
    assert (other(*inputs) - reference(*inputs)).abs().max() > 1e-3


def test_throughput_rows_are_well_formed(saved):
    results, rows, _ = saved
    assert [(r["workload"], r["contender"]) for r in rows] == [
        (w, c) for w in common.WORKLOADS for c in common.CONTENDERS]
    for row in rows:
        assert 0 < row["tokens_per_s_min"] <= row["tokens_per_s_median"] <= row["tokens_per_s_max"]
        assert row["vs_torch"] > 0 and (row["contender"] != "torch" or row["vs_torch"] == 1.0)
        assert row["max_abs_diff"] < 1e-5
        assert row["peak_mib"] > 0 if HAS_MEM_TRACKER else math.isnan(row["peak_mib"])
    saved_rows = json.loads((results / "throughput.json").read_text())
    assert json.dumps(saved_rows) == json.dumps(rows)          # as text: a NaN peak is not equal to itself


@pytest.mark.skipif(not HAS_MEM_TRACKER, reason="needs torch.distributed._tools.mem_tracker")
def test_peak_memory_holds_the_parameters_and_grows_with_the_scores():
    def peak(length: int) -> tuple[float, float]:
        workload = common.tiny(common.WORKLOADS["B"]).scaled(length=length)
        step = common.TrainStep(common.build(workload, "scratch", torch.device("cpu")), workload, torch.device("cpu"))
        parameters = sum(p.numel() * p.element_size() for p in step.model.parameters()) / 2**20
        return common.peak_memory_mib(step, torch.device("cpu")), parameters

    short, parameters = peak(8)
    long, _ = peak(128)
    assert short >= 2 * parameters      # parameters + gradients at least (AdamW's state comes on the first step)
    assert long > short


def test_interleaved_rounds_alternate_their_order():
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = common.interleaved_times(steps, repeats=3, warmup=1)
    assert calls == list("abc" "abc" "cba" "abc")
    assert all(len(seconds) == 3 and min(seconds) >= 0 for seconds in times.values())


def test_context_rows_and_plot(saved, tmp_path):
    _, _, rows = saved
    assert [(r["context"], r["batch"], r["contender"]) for r in rows] == [
        (t, 32 // t, c) for t in (8, 16) for c in common.CONTENDERS]
    assert all(0 < r["us_per_token_min"] <= r["us_per_token_median"] <= r["us_per_token_max"] for r in rows)
    context.plot(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gpu_dry_run_rows_and_flop_count(tmp_path):
    rows = gpu.main(["--dry-run", "--workloads", "B", "XL", "--json", str(tmp_path / "gpu.json")])
    assert [(r["workload"], r["contender"], r["compiled"]) for r in rows] == [
        (w, c, False) for w in ("B", "XL") for c in common.CONTENDERS]
    assert all(r["tokens_per_s_median"] > 0 and 0 < r["mfu"] < 1 for r in rows)

    # FLOPs per token from the architecture by hand: per block q, k, v, o (e x e + e each), feed-forward
    # (e x 4e + 4e, 4e x e + e), two layer norms (2e each); then the final norm and the head (e x vocab + vocab)
    w = common.tiny(gpu.GPU_WORKLOADS["XL"])
    e = w.emb
    per_block = 4 * (e * e + e) + (e * 4 * e + 4 * e) + (4 * e * e + e) + 2 * 2 * e
    n = w.depth * per_block + 2 * e + (e * w.vocab + w.vocab)
    model = common.build(w, "sdpa", torch.device("cpu"))
    assert gpu.flops_per_token(model, w) == 6 * n + 12 * w.depth * w.length * e


def test_gpu_script_refuses_to_run_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="CUDA"):
        gpu.main([])


def test_run_all_renders_the_page_from_saved_rows(saved, tmp_path):
    results, rows, _ = saved
    docs, image = tmp_path / "docs" / "performance.md", tmp_path / "docs" / "img" / "context.png"
    assert run_all.main(["--from-saved", "--results", str(results), "--docs", str(docs), "--image", str(image)]) == 0
    page = docs.read_text()
    assert "python -m bench.run_all --write-docs" in page
    assert "GPU figures are pending" in page
    assert "](img/context.png)" in page and image.exists()
    scratch_b = _scratch_b(rows)
    met = "yes" if scratch_b["vs_torch"] >= 0.8 else "**no**"
    assert f"| scratch throughput on B >= 0.8x nn.TransformerEncoder | {scratch_b['vs_torch']:.2f}x | {met} |" in page
    assert math.isnan(scratch_b["peak_mib"]) is not HAS_MEM_TRACKER


def test_run_all_without_saved_rows_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved rows"):
        run_all.main(["--from-saved", "--results", str(tmp_path), "--docs", str(tmp_path / "p.md")])


def test_profile_step_lists_the_attention_operators():
    scratch = profile_step.main(["--tiny", "--workload", "B", "--contender", "scratch", "--rows", "100"])
    fused = profile_step.main(["--tiny", "--workload", "B", "--contender", "sdpa", "--rows", "100"])
    assert "aten::_softmax" in scratch and "scaled_dot_product" not in scratch
    assert "scaled_dot_product" in fused


def test_gpu_run_survives_a_failing_workload_and_keeps_to_its_budget(monkeypatch):
    measure_one = gpu._measure_one

    def out_of_memory_on_b(workload, compiled, **kwargs):
        if workload.name == "B":
            raise RuntimeError("CUDA out of memory. Tried to allocate...\ndetails")
        return measure_one(workload, compiled, **kwargs)

    monkeypatch.setattr(gpu, "_measure_one", out_of_memory_on_b)
    rows = gpu.main(["--dry-run", "--workloads", "B", "C"])
    assert [r["note"] for r in rows[:3]] == ["failed: RuntimeError: CUDA out of memory. Tried to allocate..."] * 3
    assert all(r["note"] == "" and r["tokens_per_s_median"] > 0 for r in rows[3:])

    skipped = gpu.main(["--dry-run", "--workloads", "B", "C", "--budget-s", "0"])
    assert [r["note"] for r in skipped] == ["skipped: time budget"] * 6


def test_history_records_each_full_run_once(saved, tmp_path):
    _, rows, _ = saved
    meta = {"date": "2026-01-01 10:00 UTC", "load_before": [3.0, 2.0, 1.0], "commit": "abc1234"}
    run_all.update_history(tmp_path, meta, rows)
    history = run_all.update_history(tmp_path, meta, rows)                  # the same run rendered again
    assert len(history) == 1 and history[0]["vs_torch"]["scratch B"] == _scratch_b(rows)["vs_torch"]
    history = run_all.update_history(tmp_path, {**meta, "date": "2026-01-01 11:00 UTC"}, rows)
    assert [run["date"] for run in history] == ["2026-01-01 10:00 UTC", "2026-01-01 11:00 UTC"]
    assert len(run_all.update_history(tmp_path, {**meta, "date": "later", "tiny": True}, rows)) == 2
    assert "| 2026-01-01 11:00 UTC | abc1234 | 3 |" in run_all.history_table(history)


def _scratch_b(rows: list[dict]) -> dict:
    return next(r for r in rows if r["workload"] == "B" and r["contender"] == "scratch")


def test_sampling_rows_check_identical_output_and_report_the_overhead_and_floor_shares():
    row = sampling.measure(length=4, repeats=1, overhead=True, floor=True)
    assert row["identical_greedy_output"] and row["new_characters"] == 4
    assert row["speedup_min"] <= row["speedup_median"]
    assert row["cache_emb8_s"]["min"] > 0 and 0 < row["overhead_share_median"] < 10
    assert row["rerun_whole_s"]["min"] > 0 and row["speedup_whole_min"] <= row["speedup_whole_median"]
    assert row["cache_floor_s"]["min"] > 0 and 0 < row["floor_share_median"] < 10
    assert row["floor_speedup_median"] > 0 and row["floor_speedup_whole_median"] > 0


def test_cached_floor_is_the_greedy_cached_sampler_and_refuses_what_it_does_not_know():
    from minitx import LMConfig
    from minitx.nn import LM
    from minitx.sample import sample
    config = LMConfig(vocab=11, emb=8, heads=2, depth=2, context=12, backend="sdpa")
    model = LM(config, torch.Generator().manual_seed(3)).eval()
    seed = torch.randint(0, 11, (3, 2), generator=torch.Generator().manual_seed(4))
    floor = sampling.cached_floor(model, seed, 10)                       # fills the context exactly
    assert floor.shape == (3, 12) and torch.equal(floor, sample(model, seed, 10, temperature=0))
    # the check can fail: another model's greedy continuation differs
    other = LM(config, torch.Generator().manual_seed(5)).eval()
    assert not torch.equal(sampling.cached_floor(other, seed, 10), floor)
    with pytest.raises(ValueError, match="inside the context"):
        sampling.cached_floor(model, seed, 11)
    post = LM(LMConfig(vocab=11, emb=8, heads=2, depth=2, context=12, norm="post"), torch.Generator()).eval()
    with pytest.raises(ValueError, match="pre-norm"):
        sampling.cached_floor(post, seed, 3)


def test_whole_forward_rerun_is_the_greedy_sampler_inside_and_past_the_context():
    from minitx import LMConfig
    from minitx.nn import LM
    from minitx.sample import sample
    model = LM(LMConfig(vocab=11, emb=8, heads=2, depth=2, context=6), torch.Generator().manual_seed(3)).eval()
    seed = torch.randint(0, 11, (2, 3), generator=torch.Generator().manual_seed(4))
    whole = sampling.rerun_whole_forward(model, seed, 9)                   # slides past the context of 6
    assert whole.shape == (2, 12) and torch.equal(whole, sample(model, seed, 9, temperature=0, use_cache=False))
