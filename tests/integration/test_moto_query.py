"""The embedded AWS answers a Query by reading the partition it names (infra/local/moto_query.py), and
every answer is the one moto's own walk over the whole table gives: items, order, pages, counts,
errors — after puts, batch writes, updates that move an item between index partitions, deletes,
re-puts and rolled-back transactions."""

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.dynamodb.models.table import Table

from infra.local import moto_query
from infra.local.aws import EmbeddedAws

REGION = "eu-west-3"  # a backend of its own: the session's runtime (us-east-1) shares this process
PKS, SKS, PREFIXES = ["a", "b", "c"], ["x1", "x2", "x3", "y1", "y2", "z"], ["x", "y", "z", "q"]
COLORS, RANKS, GROUPS = ["red", "blue", "green"], [0, 1, 2, 3, 4], ["g1", "g2"]
# target -> (hash attribute, its values, range attribute or None, range values); None is the table
COMPOSITE = {
    None: ("pk", PKS, "sk", SKS),
    "by_color": ("color", COLORS, "rank", RANKS),  # sparse: only items with both
    "by_group": ("group", GROUPS, None, []),  # no range key of its own
    "by_rank": ("rank", RANKS, "sk", SKS),  # a number as the partition key
    "by_rank_local": ("pk", PKS, "rank", RANKS),  # a local index: the table's partitions
    "by_sk": ("sk", SKS, "pk", PKS),  # dense: every item has both
}
HASH_ONLY = {
    None: ("pk", PKS, None, []),
    "by_color": ("color", COLORS, "rank", RANKS),
    "by_sk": ("sk", SKS, None, []),  # dense, and no sort key at all
}
SHAPES = {"composite": COMPOSITE, "hash_only": HASH_ONLY}


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    aws = EmbeddedAws()
    endpoint = aws.start()
    yield boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    aws.stop()


def _value(value: Any) -> dict[str, str]:
    return {"N": str(value)} if isinstance(value, int) else {"S": value}


def _create(client: Any, name: str, shape: str) -> None:
    attributes = {"pk": "S", "sk": "S", "color": "S", "rank": "N", "group": "S"}
    indexes = {k: v for k, v in SHAPES[shape].items() if k is not None and k != "by_rank_local"}
    spec: dict[str, Any] = {
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name_,
                "KeySchema": [{"AttributeName": h, "KeyType": "HASH"}]
                + ([{"AttributeName": r, "KeyType": "RANGE"}] if r else []),
                "Projection": {"ProjectionType": "ALL"},
            }
            for name_, (h, _, r, _) in indexes.items()
        ]
    }
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if shape == "composite":
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        spec["LocalSecondaryIndexes"] = [
            {
                "IndexName": "by_rank_local",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "rank", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    used = {k["AttributeName"] for k in keys} | {
        a for h, _, r, _ in SHAPES[shape].values() for a in (h, r) if a
    }
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=keys,
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": t} for a, t in attributes.items() if a in used
        ],
        **spec,
    )


def _key(shape: str, pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}} if shape == "composite" else {"pk": {"S": pk}}


def _item(shape: str, pk: str, sk: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {**_key(shape, pk, sk), "sk": {"S": sk}, **{k: _value(v) for k, v in attrs.items()}}


# --- what a test does to a table --------------------------------------------------------------------

attrs = st.fixed_dictionaries(
    {},
    optional={
        "color": st.sampled_from(COLORS),
        "rank": st.sampled_from(RANKS),
        "group": st.sampled_from(GROUPS),
        "note": st.text("ab", max_size=3),
    },
)
where = st.tuples(st.sampled_from(PKS), st.sampled_from(SKS))
put = st.tuples(st.just("put"), where, attrs)
batch = st.tuples(st.just("batch"), st.lists(st.tuples(where, attrs), min_size=1, max_size=6))
update = st.tuples(
    st.just("update"),
    where,
    attrs,
    st.lists(st.sampled_from(["color", "rank", "group", "note"]), max_size=2, unique=True),
    st.booleans(),  # only if the item exists: a failed condition changes nothing
)
delete = st.tuples(st.just("delete"), where)
failed_transaction = st.tuples(st.just("failed_transaction"), where, attrs, where)


@st.composite
def queries(draw: Any, shape: str) -> tuple[str, dict[str, Any]]:
    target = draw(st.sampled_from(list(SHAPES[shape])))
    hash_attr, hash_values, range_attr, range_values = SHAPES[shape][target]
    names = {"#h": hash_attr}
    values = {
        ":h": _value(draw(st.sampled_from([*hash_values, *(["nope"] if hash_attr != "rank" else [9])])))
    }
    condition = "#h = :h"
    if range_attr and draw(st.booleans()):
        names["#r"] = range_attr
        operators = ["=", "<", "<=", ">", ">=", "between"] + (["begins_with"] if range_attr != "rank" else [])
        operator = draw(st.sampled_from(operators))
        values[":r"] = _value(draw(st.sampled_from(range_values)))
        if operator == "between":
            values[":r2"] = _value(draw(st.sampled_from(range_values)))
            condition += " AND #r BETWEEN :r AND :r2"
        elif operator == "begins_with":
            values[":r"] = _value(draw(st.sampled_from(PREFIXES)))
            condition += " AND begins_with(#r, :r)"
        else:
            condition += f" AND #r {operator} :r"
    request: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": draw(st.booleans())}
    if target:
        request["IndexName"] = target
    limit = draw(st.one_of(st.none(), st.integers(1, 4)))
    if limit:
        request["Limit"] = limit
    match draw(st.sampled_from(["none", "exists", "rank", "color"])):
        case "exists":
            request["FilterExpression"], names["#f"] = "attribute_exists(#f)", "note"
        case "rank":
            request["FilterExpression"], names["#f"], values[":f"] = "#f >= :f", "rank", _value(2)
        case "color":
            request["FilterExpression"], names["#f"], values[":f"] = "#f <> :f", "color", _value("red")
    match draw(st.sampled_from(["all", "projection", "count"])):
        case "projection":
            request["ProjectionExpression"], names["#p"] = "#p, color", "pk"
        case "count":
            request["Select"] = "COUNT"
    if target and draw(st.integers(0, 9)) == 0:
        request["ConsistentRead"] = True  # refused on a global index
    return "query", {**request, "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def _pages(client: Any, table: str, request: dict[str, Any]) -> list[Any]:
    """Every page of the query (without request metadata), or the error it raised."""
    pages: list[Any] = []
    start: dict[str, Any] | None = None
    while len(pages) < 100:
        try:
            page = client.query(TableName=table, **request, **({"ExclusiveStartKey": start} if start else {}))
        except ClientError as error:
            return [*pages, error.response["Error"]]
        page.pop("ResponseMetadata")
        pages.append(page)
        start = page.get("LastEvaluatedKey")
        if not start:
            return pages
    raise AssertionError(f"{request} did not end in 100 pages")


def _moto_own_pages(client: Any, table: str, request: dict[str, Any]) -> list[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "query", moto_query.MOTO["query"])
        return _pages(client, table, request)


def _apply(client: Any, table: str, shape: str, step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "put":
        (pk, sk), attrs = step[1], step[2]
        client.put_item(TableName=table, Item=_item(shape, pk, sk, attrs))
    elif kind == "batch":
        unique = {(pk, sk) if shape == "composite" else pk: ((pk, sk), item) for (pk, sk), item in step[1]}
        client.batch_write_item(
            RequestItems={
                table: [{"PutRequest": {"Item": _item(shape, pk, sk, a)}} for (pk, sk), a in unique.values()]
            }
        )
    elif kind == "update":
        (pk, sk), sets, removes, must_exist = step[1:]
        removes = [r for r in removes if r not in sets]
        if not sets and not removes:
            return
        names = {f"#{a}": a for a in [*sets, *removes]}
        expression = " ".join(
            part
            for part in (
                ("SET " + ", ".join(f"#{a} = :{a}" for a in sets)) if sets else "",
                ("REMOVE " + ", ".join(f"#{a}" for a in removes)) if removes else "",
            )
            if part
        )
        extra: dict[str, Any] = {}
        if must_exist:
            extra["ConditionExpression"] = "attribute_exists(pk)"
        if sets:
            extra["ExpressionAttributeValues"] = {f":{a}": _value(v) for a, v in sets.items()}
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            client.update_item(
                TableName=table,
                Key=_key(shape, pk, sk),
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                **extra,
            )
    elif kind == "delete":
        pk, sk = step[1]
        client.delete_item(TableName=table, Key=_key(shape, pk, sk))
    elif kind == "failed_transaction":  # moto rolls back by putting a copy of the table in its place
        (pk, sk), attrs, (other_pk, other_sk) = step[1:]
        if _key(shape, pk, sk) == _key(shape, other_pk, other_sk):
            return
        with pytest.raises(client.exceptions.TransactionCanceledException):
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": _item(shape, pk, sk, attrs)}},
                    {
                        "ConditionCheck": {
                            "TableName": table,
                            "Key": _key(shape, other_pk, other_sk),
                            "ConditionExpression": "attribute_exists(nothing_has_this)",
                        }
                    },
                ]
            )


_tables = Counter[str]()


@pytest.mark.parametrize("shape", SHAPES)
def test_every_answer_is_moto_own(dynamodb, shape):
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        steps=st.lists(st.one_of(put, batch, update, delete, failed_transaction, queries(shape)), max_size=25)
    )
    def check(steps: list[tuple[Any, ...]]) -> None:
        _tables[shape] += 1
        table = f"{shape}-{_tables[shape]}"
        _create(dynamodb, table, shape)
        try:
            for step in [*steps, *(("query", q) for q in _every_partition(shape))]:
                if step[0] == "query":
                    assert _pages(dynamodb, table, step[1]) == _moto_own_pages(dynamodb, table, step[1]), step
                else:
                    _apply(dynamodb, table, shape, step)
        finally:
            dynamodb.delete_table(TableName=table)

    check()


def _every_partition(shape: str) -> Iterator[dict[str, Any]]:
    """After the steps, each partition of the table and of every index, whole."""
    for target, (hash_attr, hash_values, _, _) in SHAPES[shape].items():
        for value in hash_values:
            yield {
                "KeyConditionExpression": "#h = :h",
                "ExpressionAttributeNames": {"#h": hash_attr},
                "ExpressionAttributeValues": {":h": _value(value)},
                **({"IndexName": target} if target else {}),
            }


# --- what a query costs -----------------------------------------------------------------------------


def test_a_query_reads_its_partition_not_the_table(dynamodb, monkeypatch):
    _create(dynamodb, "cost", "composite")
    # 2,000 items: 40 partitions of 50, 20 colours of 100
    items = [
        {
            "pk": {"S": f"p{n // 50}"},
            "sk": {"S": f"s{n:04}"},
            "color": {"S": f"c{n % 20}"},
            "rank": {"N": "1"},
        }
        for n in range(2000)
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={"cost": batch})
    seen: list[int] = []  # how many items each of the table's queries went through
    walks = Counter[str]()  # the whole table read: moto's walk, or building a posting list

    def recorded(table: Table) -> list[Any]:
        found = moto_query._all_items(table)
        if table.name == "cost":
            seen.append(len(found))
        return found

    def counted(name: str, original: Any) -> Any:
        def wrapper(table: Table, *args: Any) -> Any:
            if table.name == "cost":
                walks[name] += 1
            return original(table, *args)

        return wrapper

    monkeypatch.setattr(Table, "all_items", recorded)
    monkeypatch.setitem(moto_query.MOTO, "all_items", counted("moto", moto_query.MOTO["all_items"]))
    monkeypatch.setattr(moto_query, "_every_item", counted("postings", moto_query._every_item))

    def query(value: str, index: str | None = None) -> int:
        attribute = "color" if index else "pk"
        answer = dynamodb.query(
            TableName="cost",
            KeyConditionExpression="#a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            **({"IndexName": index} if index else {}),
        )
        return answer["Count"]

    assert query("p7") == 50 and seen == [50]
    assert query("c3", "by_color") == 100 and walks == {"postings": 1}  # the first on this attribute
    dynamodb.update_item(
        TableName="cost",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s0000"}},
        UpdateExpression="SET color = :c",
        ExpressionAttributeValues={":c": {"S": "c3"}},
    )
    dynamodb.delete_item(TableName="cost", Key={"pk": {"S": "p0"}, "sk": {"S": "s0003"}})
    seen.clear()
    assert [query("c3", "by_color"), query("c0", "by_color"), query("p0")] == [100, 99, 49]
    assert seen == [100, 99, 49] and walks == {"postings": 1}  # no walk since

    monkeypatch.setattr(Table, "query", moto_query.MOTO["query"])  # moto's own, for contrast
    seen.clear()
    assert query("p7") == 50 and seen == [1999] and walks == {"postings": 1, "moto": 1}
    dynamodb.delete_table(TableName="cost")


# --- another moto -----------------------------------------------------------------------------------


def test_the_installed_moto_is_the_one_the_patch_knows(dynamodb):
    """Fails on a moto upgrade: read its Table.query and write paths again, then change KNOWN_MOTO."""
    assert moto_query.mismatch() is None
    assert Table.query is moto_query._query


def test_another_moto_is_left_unpatched_and_said(monkeypatch, capsys):
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    monkeypatch.setattr(moto_query, "_installed", False)
    monkeypatch.setattr(Table, "query", moto_query.MOTO["query"])
    assert moto_query.install() is False
    assert Table.query is moto_query.MOTO["query"]
    assert "moto 5.3.0 is not 5.2.6" in capsys.readouterr().err
