"""SLO expressions: parsing (bad ones are rejected naming the token) and evaluation."""

import pytest

from fastload.errors import UsageError
from fastload.results.slo import check_all, parse

DOC = {
    "requests": 1000,
    "rps": 12345.0,
    "status_codes": {"200": 990, "503": 6, "500": 4},
    "errors": {"total": 5, "connect": 0, "timeout": 5, "reset": 0, "protocol": 0},
    "latency_us": {"min": 100, "mean": 900.0, "stdev": 50.0, "max": 2_500_000, "p50": 800, "p90": 1500,
                   "p95": 2000, "p99": 790_000, "p99.9": 900_000, "p99.99": 1_000_000},
}


@pytest.mark.parametrize(
    "expr,metric,op,threshold,value,passed",
    [("p99<800ms", "p99", "<", 800_000, 790_000, True),
     ("p50<=20ms", "p50", "<=", 20_000, 800, True),
     ("p99.9<1s", "p99.9", "<", 1_000_000, 900_000, True),
     ("max<2s", "max", "<", 2_000_000, 2_500_000, False),
     ("rps>=100000", "rps", ">=", 100_000, 12345.0, False),
     ("rps >= 10k", "rps", ">=", 10_000, 12345.0, True),
     ("errors<0.5%", "errors", "<", 0.5, pytest.approx(100 * 5 / 1005), True),
     ("errors==0", "errors", "==", 0, 5, False),
     ("status_5xx==0", "status_5xx", "==", 0, 10, False),
     ("status_5xx<2%", "status_5xx", "<", 2, 1.0, True),
     ("status_200>=990", "status_200", ">=", 990, 990, True),
     ("p90<1500us", "p90", "<", 1500, 1500, False),
     ("mean<1", "mean", "<", 1000, 900.0, True)],
)
def test_parse_and_check(expr, metric, op, threshold, value, passed):
    slo = parse(expr)
    assert (slo.metric, slo.op, slo.threshold) == (metric, op, threshold)
    row = slo.check(DOC)
    assert row["value"] == value
    assert row["passed"] is passed
    assert row["expr"] == expr


@pytest.mark.parametrize(
    "expr,token",
    [("p99<<800ms", "<800ms"), ("p99 800ms", "800ms"), ("latency<5ms", "latency"),
     ("p99<800parsecs", "parsecs"), ("rps>=5%", "percentage"), ("status_6xx==0", "status_6xx"),
     ("p99<", "<end>"), ("<5", "<5")],
)
def test_bad_expressions_name_the_problem(expr, token):
    with pytest.raises(UsageError) as e:
        parse(expr)
    assert token in str(e.value)


def test_check_all_verdict():
    rows, passed = check_all([parse("p99<800ms"), parse("errors<1%")], DOC)
    assert passed and len(rows) == 2
    rows, passed = check_all([parse("p99<800ms"), parse("status_5xx==0")], DOC)
    assert not passed and [r["passed"] for r in rows] == [True, False]


def test_slo_file_yaml_and_json(tmp_path):
    from fastload.results.slo import load_file

    y = tmp_path / "gates.yaml"
    y.write_text("- p99<800ms\n- errors<0.5%\n")
    assert load_file(str(y)) == ["p99<800ms", "errors<0.5%"]
    j = tmp_path / "gates.json"
    j.write_text('{"slo": ["rps>=10"]}')
    assert load_file(str(j)) == ["rps>=10"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("p99: [\n")
    with pytest.raises(UsageError, match="invalid YAML"):
        load_file(str(bad))
    with pytest.raises(UsageError, match="cannot read"):
        load_file(str(tmp_path / "missing.yaml"))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("- p99<800ms # d\xe9lai\n".encode("latin-1"))
    with pytest.raises(UsageError, match="--slo-file .*not UTF-8 text"):
        load_file(str(latin1))
