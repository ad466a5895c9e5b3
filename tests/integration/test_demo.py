import json

from semdenoise.experiments.demo import run_demo


def test_demo_writes_a_report_with_every_method(tmp_path):
    result = run_demo(tmp_path, minutes=0.03, n_train=2, n_test=1)
    assert {row["method"] for row in result["rows"]} == {
        "noisy",
        "gaussian (sigma 1)",
        "n2v (grid)",
    }
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["run"]["train_steps"] >= 1
    assert "| method |" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "denoising.png").is_file()
