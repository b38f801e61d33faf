"""Every benchmark the manual quotes runs as quoted: a quick form of each, in seconds (bench_gpu's in
test_gpu_path.py; validate_coverage and compare_methods on the tiny audience in test_prediction_analysis.py)."""
import re

import bench_generation
import bench_prediction
import bench_training


def figures(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", line)]


def test_bench_generation_quick_runs_on_the_reference_preset(capsys):
    """The reference preset with the benchmark's own ensembles: it once stopped with a ConfigError
    (interval networks need the ensemble Nmax)."""
    assert bench_generation.main(["--quick"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:1] == ["16"])
    nb, rate, per_core, base, ratio, *_ = figures(row)
    assert nb == 16 and rate > 0 and per_core == rate and base > 0       # one worker: per core = the rate
    assert ratio == round(per_core / base) or abs(ratio - per_core / base) <= 1
    assert re.search(r"physical space P: \d+ samples/s .* N_b=16's", out)


def test_bench_training_quick(capsys):
    bench_training.main(["--quick"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("arcS:")]
    assert len(rows) == 4 and "2 replicas batched" in rows[2]
    assert all(figures(line.split("samples/s")[0])[-1] > 0 for line in rows[:3])


def test_bench_prediction_quick(capsys):
    bench_prediction.main(["--quick"])
    out = capsys.readouterr().out
    assert out.startswith("20 samples x ")
    diffs = [float(m) for m in re.findall(r"max \|batched - baseline\| / max \|prediction\|: (\S+) ", out)]
    assert diffs and max(diffs) < 1e-4          # the batched pass predicts what one sample at a time does
    assert "whole stage, predict_all" in out
