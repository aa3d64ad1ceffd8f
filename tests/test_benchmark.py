"""`stcnn benchmark` on a DAVIS-layout sequence: the real engine and the optical-flow baseline in one table."""

from __future__ import annotations

from segmentation.benchmark import run_benchmark
from segmentation.synthetic import make_clip


def test_the_benchmark_scores_the_engine_beside_the_flow_baseline(tmp_path, capsys):
    clip = make_clip(tmp_path / "data" / "seq", n_frames=6, size=(128, 96), seed=2, as_folder=True)
    clip.gt_dir.rename(clip.video.parent / "masks")  # <seq>/frames and <seq>/masks, as DAVIS lays them out
    table = run_benchmark(tmp_path / "data", options={"online_seconds": 0}, out=str(tmp_path / "out"))
    row = table.iloc[0]
    assert list(table["sequence"]) == ["seq", "MEAN"] and row["frames"] == 6
    assert 0.5 < row["JF"] <= 1 and 0.3 < row["flow_JF"] <= 1 and row["flow_JF"] != row["JF"]
    assert row["fps_x_flow"] > 0 and table.iloc[-1]["fps_x_flow"] > 0  # speed as a ratio to the baseline's
    assert "fps_x_flow" in capsys.readouterr().out
