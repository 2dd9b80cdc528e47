"""``vqa-rt eval`` as a user runs it: the comparison table, its files, and bad inputs."""

import csv
import json

import pytest


@pytest.fixture(scope="module")
def scores_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    path = folder / "scores.csv"
    rows = [("r1", "a", 2.0, 31.0, 0.90), ("r1", "b", 3.0, 34.0, 0.93), ("r1", "c", 4.5, 39.0, 0.97),
            ("r2", "d", 1.5, 29.0, 0.88), ("r2", "e", 3.5, 36.0, 0.92), ("r2", "f", 4.0, 38.5, 0.96),
            ("r3", "g", 3.0, 35.0, 0.95), ("r3", "h", 2.0, 33.0, 0.94)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "distorted", "mos", "psnr", "ssim"])
        writer.writerows(rows)
    return path


def test_eval_prints_the_table_and_writes_csv_json_and_plots(cli, scores_csv, tmp_path):
    result = cli("eval", scores_csv, "-m", "psnr", "-m", "ssim", "--mapping", "linear",
                 "--csv", tmp_path / "t.csv", "--json", tmp_path / "t.json", "--plots", tmp_path / "plots")
    assert result.returncode == 0, result.stderr
    table = result.stdout.decode()
    assert "8 rows, MOS from 'mos', linear mapping" in table
    assert [line.split()[:2] for line in table.splitlines()[3:5]] == [["psnr", "2/3"], ["ssim", "2/3"]]
    assert "psnr: group 'r3' left out (2 rows, fewer than 3)" in table
    rows = list(csv.DictReader((tmp_path / "t.csv").read_text().splitlines()))
    assert [r["method"] for r in rows] == ["psnr", "ssim"]
    document = json.loads((tmp_path / "t.json").read_text())
    assert document["group_by"] == "reference" and len(document["methods"][0]["groups"]) == 3
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["psnr.png", "ssim.png"]


@pytest.mark.parametrize("args, message", [
    (["-m", "vmaf"], "no column 'vmaf' (columns: reference, distorted, mos, psnr, ssim)"),
    (["-m", "psnr", "--mos-column", "dmos"], "no column 'dmos'"),
    (["-m", "psnr", "--group-by", "sequence"], "no column 'sequence'"),
    (["-m", "psnr", "--mos-csv", "absent.csv"], "absent.csv: no such file"),
])
def test_bad_eval_inputs_get_one_line_and_exit_2(cli, scores_csv, args, message):
    result = cli("eval", scores_csv, *args)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: ") and message in stderr


def test_a_method_given_twice_is_one_line(cli, scores_csv):
    result = cli("eval", scores_csv, "-m", "psnr", "-m", "psnr")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: score column(s) given more than once: 'psnr'")


@pytest.mark.parametrize("plots, message", [
    ("scores.csv", "exists and is not a folder"),
    ("scores.csv/plots", "the plot folder cannot be made"),
])
def test_a_plot_folder_that_cannot_be_made_is_refused_before_anything_is_written(cli, scores_csv, tmp_path, plots,
                                                                                 message):
    result = cli("eval", scores_csv, "-m", "psnr", "--csv", tmp_path / "t.csv", "--json", tmp_path / "t.json",
                 "--plots", scores_csv.parent / plots)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and stderr.count("\n") == 1 and stderr.startswith("vqa-rt: error: "), stderr
    assert message in stderr
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.json").exists()
