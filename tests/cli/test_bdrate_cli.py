"""``vqa-rt bd-rate`` as a codec engineer runs it: two rate-quality CSVs in, a table (and a file) out."""

import csv
import json

import pytest

pytest.importorskip("bjontegaard")

HEADER = ["sequence", "qp", "kbps", "psnr_y", "ms_ssim_y", "vmaf"]
ANCHOR = [["s1", 22, 5000, 41.0, 0.990, 95.0], ["s1", 27, 2600, 38.1, 0.981, 90.0],
          ["s1", 32, 1400, 35.0, 0.962, 80.0], ["s1", 37, 780, 32.0, 0.930, 66.0]]


def write(path, rows) -> str:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    return str(path)


@pytest.fixture
def curves(tmp_path):
    cheaper = [[s, qp, kbps * 0.95, *rest] for s, qp, kbps, *rest in ANCHOR]
    return write(tmp_path / "anchor.csv", ANCHOR), write(tmp_path / "test.csv", cheaper)


def test_the_table_and_the_json_file(cli, curves, tmp_path):
    out = tmp_path / "bd.json"
    result = cli("bd-rate", *curves, "--rate", "kbps", "--group", "sequence", "--output", out)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["group", "metric", "BD-rate", "BD-quality", "points"]
    assert [line.split()[1] for line in lines[1:]] == ["psnr_y", "ms_ssim_y", "ms_ssim_y", "vmaf"]
    assert all(" -5.00% " in line for line in lines[1:])
    rows = json.loads(out.read_text())
    assert [r["metric"] for r in rows] == ["psnr_y", "ms_ssim_y", "ms_ssim_y (dB)", "vmaf"]
    assert rows[0]["bd_rate_percent"] == pytest.approx(-5.0) and rows[0]["bd_quality"] > 0


def test_csv_output_and_a_chosen_metric_and_interpolation(cli, curves, tmp_path):
    out = tmp_path / "bd.csv"
    result = cli("bd-rate", *curves, "--rate", "kbps", "-q", "vmaf", "--method", "cubic", "-o", out)
    assert result.returncode == 0, result.stderr.decode()
    rows = list(csv.DictReader(out.open()))
    assert [r["metric"] for r in rows] == ["vmaf"] and float(rows[0]["bd_rate_percent"]) == pytest.approx(-5.0)


@pytest.mark.parametrize("args, message", [
    (["--rate", "bits"], "no column 'bits'"),
    (["--rate", "kbps", "--method", "linear"], "unknown interpolation 'linear'"),
    (["--rate", "kbps", "-o", "{anchor}"], "this output is the input"),
    (["--rate", "kbps", "-o", "{folder}/out.txt"], "the output is .csv or .json"),
])
def test_bad_input_is_one_line_and_nothing_is_written(cli, curves, tmp_path, args, message):
    before = open(curves[0]).read()
    args = [a.format(anchor=curves[0], folder=tmp_path) for a in args]
    result = cli("bd-rate", *curves, *args)
    stderr = result.stderr.decode()
    assert result.returncode != 0 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert open(curves[0]).read() == before and not (tmp_path / "out.txt").exists()
