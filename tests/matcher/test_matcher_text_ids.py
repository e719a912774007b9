"""Order ids as text (an operator's own names), beside the chain's integer ids: read from the
CSV and from API dicts, echoed back as given in the matches, refused when empty or repeated."""

import json
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matcher_testkit import networks, orders_from, run_cli, side_rows, write, zonal_books

from matcher import OrderError, book_from_orders, clear_orders, read_orders_csv, verify

HEADER = "id,side,quantity_wh,price\n"
# Uniform: b0 buys 80 Wh of s17 and 20 of s3, b1 50 of s3; b12 (45) stays below s3 (50); price 50.
TEXT_BOOK = (
    HEADER + "b0,bid,100,60\ns17,offer,80,40\nb1,bid,50,55\ns3,offer,100,50\nb12,bid,30,45\n"
)
TEXT_MATCHES = [
    {"bid": "b0", "offer": "s17", "quantity_wh": 80, "buyer_price": 50, "seller_price": 50},
    {"bid": "b0", "offer": "s3", "quantity_wh": 20, "buyer_price": 50, "seller_price": 50},
    {"bid": "b1", "offer": "s3", "quantity_wh": 50, "buyer_price": 50, "seller_price": 50},
]


# -- the command line ---------------------------------------------------------------------


def test_cli_clears_a_book_with_text_ids_and_echoes_them(tmp_path):
    result = run_cli("clear", "--orders", write(tmp_path, "o.csv", TEXT_BOOK))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["price"], data["volume_wh"], data["welfare"]) == (50, 150, 2050)
    assert data["matches"] == TEXT_MATCHES


def test_cli_json_output_with_text_ids_passes_verify(tmp_path):
    orders = write(tmp_path, "o.csv", TEXT_BOOK)
    out = str(tmp_path / "c.json")
    cleared = run_cli("clear", "--orders", orders, "--mechanism", "pay-as-bid", "--output", out)
    assert cleared.returncode == 0 and cleared.stdout == "", cleared.stderr
    with open(out, encoding="utf-8") as handle:
        data = json.load(handle)
    assert [
        (m["bid"], m["offer"], m["quantity_wh"], m["buyer_price"]) for m in data["matches"]
    ] == [("b0", "s17", 80, 60), ("b0", "s3", 20, 60), ("b1", "s3", 50, 55)]
    checked = run_cli("verify", "--orders", orders, "--clearing", out)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: pay-as-bid clearing, 3 matches")
    # A match naming an order the book does not have is reported by its text id.
    data["matches"][0]["bid"] = "b9"
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    failed = run_cli("verify", "--orders", orders, "--clearing", out)
    assert failed.returncode == 1
    assert "FAIL unknown_order: match 0: bid 'b9' is not a bid of this interval" in failed.stderr


def test_cli_zonal_with_text_ids(tmp_path):
    orders = write(
        tmp_path,
        "o.csv",
        "id,side,quantity_wh,price,zone,source,renewable_only\n"
        "north-1,bid,100,60,0,,0\nsouth-1,bid,50,55,1,,1\nPV-7,offer,80,40,0,solar,0\n"
        "gen-2,offer,100,50,1,grid_mix,0\n",
    )
    network = write(
        tmp_path,
        "n.json",
        json.dumps({"zones": [0, 1], "lines": [{"from": 0, "to": 1, "capacity_wh": 30, "fee": 2}]}),
    )
    out = str(tmp_path / "c.json")
    cleared = run_cli(
        "clear", "--orders", orders, "--mechanism", "zonal", "--network", network, "--output", out
    )
    assert cleared.returncode == 0, cleared.stderr
    with open(out, encoding="utf-8") as handle:
        data = json.load(handle)
    ids = {m["bid"] for m in data["matches"]} | {m["offer"] for m in data["matches"]}
    assert ids <= {"north-1", "south-1", "PV-7", "gen-2"} and "PV-7" in ids
    # The renewable-only bid in zone 1 gets solar energy only, over the line.
    assert all(m["offer"] == "PV-7" for m in data["matches"] if m["bid"] == "south-1")
    checked = run_cli("verify", "--orders", orders, "--clearing", out, "--network", network)
    assert checked.returncode == 0, checked.stderr


def test_cli_refuses_a_duplicate_text_id_naming_line_and_id(tmp_path):
    orders = write(tmp_path, "o.csv", HEADER + "b0,bid,100,60\ns17,offer,80,40\n\ns17,offer,5,30\n")
    out = tmp_path / "c.json"
    result = run_cli("clear", "--orders", orders, "--output", str(out))
    assert result.returncode == 2 and result.stdout == ""
    assert "line 5: duplicate order id 's17' (first on line 3)" in result.stderr
    assert not out.exists()


# -- reading ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("b0,bid,100,60\nb0,offer,80,40\n", 3, "duplicate order id 'b0' (first on line 2)"),
        (
            "b0,bid,100,60\n b0 ,offer,80,40\n",
            3,
            "duplicate order id 'b0' (first on line 2)",
        ),  # blanks around
        (
            "7,bid,100,60\n007,offer,80,40\n",
            3,
            "duplicate order id 7 (first on line 2)",
        ),  # one integer
        ("b0,bid,100,60\n,offer,80,40\n", 3, "missing id"),
        ('b0,bid,100,60\n"  ",offer,80,40\n', 3, "missing id"),
        (
            "b0,bid,100,60\n99999999999999999999,offer,80,40\n",
            3,
            "id must be between 0 and 18446744073709551615",
        ),
    ],
)
def test_bad_ids_name_their_line(tmp_path, body, line, message):
    with pytest.raises(OrderError) as caught:
        read_orders_csv(write(tmp_path, "o.csv", HEADER + body))
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: {message}")


@pytest.mark.parametrize(
    "bad_id, message",
    [
        ("", "order 2: missing id"),
        ("   ", "order 2: missing id"),
        (None, "order 2: missing id"),
        (1.5, "order 2: id must be an integer or non-empty text, got 1.5"),
        (True, "order 2: id must be an integer or non-empty text, got True"),
        ("b0", "order 2: duplicate order id 'b0' (first on order 1)"),
    ],
)
def test_api_refuses_bad_ids_naming_the_position(bad_id, message):
    orders = [
        {"id": "b0", "side": "bid", "quantity_wh": 10, "price": 50},
        {"id": bad_id, "side": "offer", "quantity_wh": 10, "price": 40},
    ]
    with pytest.raises(OrderError, match=f"^{re.escape(message)}"):
        clear_orders(orders)


def test_integer_ids_stay_integers_beside_text_ids(tmp_path):
    book = read_orders_csv(
        write(tmp_path, "o.csv", HEADER + "b0,bid,10,60\n007,bid,10,60\n12,offer,25,40\n")
    )
    data = json.loads(clear_orders(book).to_json())
    # 007 is the integer 7, and sorts before the text id b0; offer 12 keeps 5 Wh, so price 40.
    assert data["matches"] == [
        {"bid": 7, "offer": 12, "quantity_wh": 10, "buyer_price": 40, "seller_price": 40},
        {"bid": "b0", "offer": 12, "quantity_wh": 10, "buyer_price": 40, "seller_price": 40},
    ]


def test_tie_rule_puts_integer_ids_first_then_text_by_code_point():
    bids = [{"id": i, "side": "bid", "quantity_wh": 10, "price": 50} for i in ("a", "B", 10, 2)]
    clearing = clear_orders(bids + [{"id": "s", "side": "offer", "quantity_wh": 25, "price": 40}])
    assert [(m.bid, m.offer, m.quantity_wh) for m in clearing.matches] == [
        (2, "s", 10),
        (10, "s", 10),
        ("B", "s", 5),
    ]
    assert clearing.price == 50


def test_json_orders_with_text_ids_and_canonical_output():
    """Orders as an API client sends them (JSON), ids that need escaping; the canonical JSON
    is the same bytes whatever the order of the input."""
    orders = json.loads(
        json.dumps(
            [
                {"id": 'he said "hi", twice', "side": "bid", "quantity_wh": 40, "price": 70},
                {"id": "Zählpunkt-Ä1", "side": "bid", "quantity_wh": 30, "price": 65},
                {"id": "back\\slash", "side": "offer", "quantity_wh": 50, "price": 45},
                {"id": 3, "side": "offer", "quantity_wh": 50, "price": 60},
            ]
        )
    )
    first = clear_orders(orders)
    text = first.to_json()
    assert json.loads(text) == first.to_json_dict()
    assert [(m["bid"], m["offer"]) for m in json.loads(text)["matches"]] == [
        ('he said "hi", twice', "back\\slash"),
        ("Zählpunkt-Ä1", "back\\slash"),
        ("Zählpunkt-Ä1", 3),
    ]
    for seed in range(5):
        shuffled = list(orders)
        random.Random(seed).shuffle(shuffled)
        assert clear_orders(shuffled).to_json() == text
    assert verify(book_from_orders(orders), first.to_json_dict()) == []


def test_verify_names_text_ids_and_refuses_empty_ones():
    orders = [
        {"id": "b0", "side": "bid", "quantity_wh": 10, "price": 50},
        {"id": "s0", "side": "offer", "quantity_wh": 10, "price": 40},
    ]
    book = book_from_orders(orders)
    good = clear_orders(orders).to_json_dict()
    assert verify(book, good) == []
    bad = json.loads(json.dumps(good))
    bad["matches"][0]["quantity_wh"] = 11
    assert "overfill: bid 'b0': filled 11 of 10 Wh; offer 's0': filled 11 of 10 Wh" in map(
        str, verify(book, bad)
    )
    bad["matches"][0]["bid"] = ""
    assert [v.condition for v in verify(book, bad)][0] == "format"
    swapped = json.loads(json.dumps(good))
    swapped["matches"][0]["bid"] = "s0"
    assert any(
        "bid 's0' is not a bid of this interval (it is an offer)" in str(v)
        for v in verify(book, swapped)
    )


def test_zone_missing_from_network_names_the_text_id():
    orders = [
        {"id": "b0", "side": "bid", "quantity_wh": 10, "price": 50},
        {"id": "s-far", "side": "offer", "quantity_wh": 10, "price": 40, "zone": 3},
    ]
    with pytest.raises(
        OrderError, match=r"^order 2: order 's-far' is in zone 3, which the network does not list"
    ):
        clear_orders(orders, mechanism="zonal", network={"zones": [0], "lines": []})


# -- text ids clear exactly as integer ids in the same order ------------------------------


def renamed(orders, text_from):
    """Ids >= text_from become text that sorts like the integers (after every integer id)."""
    return [{**o, "id": f"o{o['id']:04d}" if o["id"] >= text_from else o["id"]} for o in orders]


def same_clearing_up_to_ids(orders, text_from, mechanism, network=None):
    plain = clear_orders(orders, mechanism, network).to_json_dict()
    named = clear_orders(renamed(orders, text_from), mechanism, network).to_json_dict()
    name = {o["id"]: r["id"] for o, r in zip(orders, renamed(orders, text_from))}
    for match in plain["matches"]:
        match["bid"], match["offer"] = name[match["bid"]], name[match["offer"]]
    assert named == plain


@settings(max_examples=150, deadline=None)
@given(side_rows, side_rows, st.integers(1, 25), st.sampled_from(["uniform", "pay-as-bid"]))
def test_text_ids_clear_like_integer_ids(bids, offers, text_from, mechanism):
    same_clearing_up_to_ids(orders_from(bids, offers), text_from, mechanism)


@settings(max_examples=40, deadline=None)
@given(zonal_books(), networks(), st.integers(1, 20))
def test_text_ids_clear_like_integer_ids_zonal(book, network, text_from):
    same_clearing_up_to_ids(orders_from(*book), text_from, "zonal", network)
