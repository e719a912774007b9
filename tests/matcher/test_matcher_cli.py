"""CSV input and the command line: clear errors naming the line, no partial output, exit codes."""

import json
import os

import pytest
from matcher_testkit import run_cli, write

from matcher import OrderError, read_orders_csv

HEADER = "id,side,quantity_wh,price,zone,source,renewable_only\n"
GOOD = (
    HEADER
    + "1,bid,100,60,0,,0\n2,bid,50,55,1,,1\n3,offer,80,40,0,solar,0\n4,offer,100,50,1,grid_mix,0\n"
)
NETWORK = {"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 30, "fee": 2}]}


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("1,bid,100,60,0,,0\n2,bid,50\n", 3, "malformed row: 3 fields, the header has 7"),
        ("1,bid,100,60,0,,0\n2,sell,50,40,0,,0\n", 3, "unknown side 'sell'"),
        ("1,bid,100.5,60,0,,0\n", 2, "quantity_wh must be an integer, got '100.5'"),
        ("1,bid,0,60,0,,0\n", 2, "quantity_wh must be a positive integer, got 0"),
        ("1,bid,-3,60,0,,0\n", 2, "quantity_wh must be a positive integer, got -3"),
        ("1,bid,10,6x,0,,0\n", 2, "price must be an integer, got '6x'"),
        (
            "1,bid,10,60,0,,0\n\n7,offer,5,40,0,wind,0\n1,offer,5,40,0,wind,0\n",
            5,
            "duplicate order id 1 (first on line 2)",
        ),
        ("1,offer,10,60,0,coal,0\n", 2, "unknown source 'coal'"),
        ("1,offer,10,60,0,solar,1\n", 2, "renewable_only is for bids"),
        ("1,bid,10,60,0,,yes\n", 2, "renewable_only must be 0 or 1"),
        ("1,bid,10,60,70000,,0\n", 2, "zone must be between 0 and 65535"),
        ("-1,bid,10,60,0,,0\n", 2, "id must be between 0 and 18446744073709551615, got -1"),
        ("1,bid,10,60,0,,0\n,offer,5,40,0,wind,0\n", 3, "missing id"),
    ],
)
def test_bad_rows_name_their_line(tmp_path, body, line, message):
    path = write(tmp_path, "orders.csv", HEADER + body)
    with pytest.raises(OrderError) as caught:
        read_orders_csv(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: {message}")


def test_bad_header(tmp_path):
    with pytest.raises(OrderError, match="line 1: header lacks column.s. price"):
        read_orders_csv(write(tmp_path, "o.csv", "id,side,quantity_wh\n1,bid,5\n"))
    with pytest.raises(OrderError, match="line 1: empty file"):
        read_orders_csv(write(tmp_path, "e.csv", ""))


def test_optional_columns_default(tmp_path):
    book = read_orders_csv(
        write(tmp_path, "o.csv", "price,quantity_wh,side,id\n60,5,bid,9\n40,5,offer,3\n")
    )
    assert book.bid_id.tolist() == [9] and book.offer_zone.tolist() == [0]
    assert not book.offer_renewable.any() and not book.bid_renewable_only.any()


def test_cli_clear_prints_one_json_object(tmp_path):
    orders = write(tmp_path, "o.csv", HEADER + "1,bid,100,60,0,,0\n3,offer,80,40,0,solar,0\n")
    result = run_cli("clear", "--orders", orders)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["price"] == 60 and data["volume_wh"] == 80
    assert data["matches"] == [
        {"bid": 1, "offer": 3, "quantity_wh": 80, "buyer_price": 60, "seller_price": 60}
    ]


def test_cli_bad_input_exits_non_zero_without_output(tmp_path):
    orders = write(tmp_path, "o.csv", HEADER + "1,bid,100,60,0,,0\n2,bid,1.5,60,0,,0\n")
    out = tmp_path / "clearing.json"
    result = run_cli("clear", "--orders", orders, "--output", str(out))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "line 3: quantity_wh must be an integer" in result.stderr
    assert not out.exists() and os.listdir(tmp_path) == ["o.csv"]


def test_cli_zonal_clear_then_verify(tmp_path):
    orders = write(tmp_path, "o.csv", GOOD)
    network = write(tmp_path, "n.json", json.dumps(NETWORK))
    out = str(tmp_path / "c.json")
    cleared = run_cli(
        "clear", "--orders", orders, "--mechanism", "zonal", "--network", network, "--output", out
    )
    assert cleared.returncode == 0, cleared.stderr
    data = json.load(open(out))
    assert data["mechanism"] == "zonal" and set(data["zone_prices"]) == {"0", "1"}
    checked = run_cli("verify", "--orders", orders, "--clearing", out, "--network", network)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: zonal clearing")
    # Tamper: the seller gets more than the buyer pays minus the fee.
    data["matches"][-1]["seller_price"] = data["matches"][-1]["buyer_price"]
    data["zone_prices"] = {k: data["matches"][-1]["buyer_price"] for k in data["zone_prices"]}
    with open(out, "w") as handle:
        json.dump(data, handle)
    failed = run_cli("verify", "--orders", orders, "--clearing", out, "--network", network)
    assert failed.returncode == 1
    assert "FAIL grid_fee: bid 1, offer 4" in failed.stderr


def test_cli_reports_bad_network_and_clearing_files(tmp_path):
    orders = write(tmp_path, "o.csv", GOOD)
    network = write(
        tmp_path, "n.json", '{"zones": [0, 1], "lines": [{"from": 0, "to": 5, "capacity_wh": 1}]}'
    )
    result = run_cli("clear", "--orders", orders, "--mechanism", "zonal", "--network", network)
    assert result.returncode == 2 and result.stdout == ""
    assert "network.lines[0].to: zone 5 is not in network.zones" in result.stderr
    broken = write(tmp_path, "c.json", "{not json")
    result = run_cli("verify", "--orders", orders, "--clearing", broken)
    assert result.returncode == 2 and "line 1: not valid JSON" in result.stderr


def test_zone_missing_from_network_names_the_line(tmp_path):
    orders = write(tmp_path, "o.csv", HEADER + "1,bid,100,60,0,,0\n2,offer,10,40,3,wind,0\n")
    network = write(tmp_path, "n.json", json.dumps(NETWORK))
    result = run_cli("clear", "--orders", orders, "--mechanism", "zonal", "--network", network)
    assert result.returncode == 2 and result.stdout == ""
    assert "line 3: order 2 is in zone 3, which the network does not list" in result.stderr
