"""The profile's summary files py-spy's samples by our innermost function and the work below it
(benchmarks/profiling.py)."""

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from profiling import classify, summarise  # noqa: E402

STAGE = "<module> (stages/enhance.py:9);run (stages/enhance.py:20);enhance (sanitizer/methods/advrbd.py:222)"


def test_a_sample_is_filed_under_our_innermost_function_and_the_work_below_it():
    backward = f"{STAGE};step (sanitizer/steps.py:40);backward (torch/_tensor.py:625);_engine_run_backward (torch/autograd/graph.py:841)"
    assert classify(backward.split(";")) == ("sanitizer/steps.py: step", "backward")
    forward = f"{STAGE};Classifier.embed (sanitizer/models.py:40);Conv2d.forward (torch/nn/modules/conv.py:565)"
    assert classify(forward.split(";")) == ("sanitizer/models.py: Classifier.embed", "forward")
    ours_alone = f"{STAGE};two_means (sanitizer/methods/clustering.py:38)"
    assert classify(ours_alone.split(";")) == ("sanitizer/methods/clustering.py: two_means", "other")
    manifest = f"{STAGE};write_manifest (sanitizer/manifest.py:80);write_table (pyarrow/parquet/core.py:1900)"
    assert classify(manifest.split(";")) == ("sanitizer/manifest.py: write_manifest", "files")
    importing = "<module> (stages/enhance.py:3);_find_and_load (<frozen importlib._bootstrap>:1360);<module> (torch/__init__.py:1)"
    assert classify(importing.split(";")) == ("(imports)", "imports")
    assert classify(["<module> (dvc/cli.py:1)"]) == ("(outside our code)", "other")


def test_summarise_adds_up_counts_per_function_and_kind(tmp_path):
    raw = tmp_path / "enhance.txt"
    raw.write_text(
        f"{STAGE};step (sanitizer/steps.py:40);backward (torch/_tensor.py:625) 30\n"
        f"{STAGE};step (sanitizer/steps.py:41);step (torch/optim/sgd.py:90) 5\n"
        f"{STAGE};Classifier.embed (sanitizer/models.py:40);Conv2d.forward (torch/nn/modules/conv.py:565) 65\n"
    )
    doc = summarise(raw)
    assert doc["samples"] == 100
    assert doc["kinds"] == {"backward": 30, "optimizer": 5, "forward": 65}
    assert list(doc["functions"]) == ["sanitizer/models.py: Classifier.embed", "sanitizer/steps.py: step"]
    assert doc["functions"]["sanitizer/steps.py: step"] == {"backward": 30, "optimizer": 5}
