"""Merchant routes: a product's stock (import, levels, removal, export)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Query

from functions.merchant import stock
from functions.merchant.catalog import owned_product
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import CodeList, CodesMade, ProductStock, StockImported, StockRemoved
from shared import adapters
from shared.http import documented, json_response, request_body, text_body
from shared.orders import utcnow

router = Router()


def _content_type() -> str:
    return router.current_event.headers.get("content-type", "text/plain")


@router.post(
    "/merchant/products/<product_id>/stock",
    summary="Import codes: text/plain, one per line, or JSON {codes}",
    description="A resumable import sends chunks with Import-Id, Import-Chunk and Import-First-Line; "
    "a chunk sent again is answered again (Import-Replayed: true), never imported twice.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("the codes", CodeList, text=True),
    responses=documented(
        200, "what was added, and each refused line", StockImported, errors=[400, 401, 403, 404, 409]
    ),
)
def post_stock(
    product_id: str,
    import_id: Annotated[
        str | None, Header(alias="import-id", description="names a resumable import")
    ] = None,
    import_chunk: Annotated[
        str | None, Header(alias="import-chunk", description="this chunk's number")
    ] = None,
    import_first_line: Annotated[
        str | None, Header(alias="import-first-line", description="this chunk's first line in the file")
    ] = None,
) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.products())
    chunk, first_line = stock.import_headers(
        {"import-id": import_id, "import-chunk": import_chunk, "import-first-line": import_first_line}
    )
    answer = stock.import_codes(
        product,
        text_body(router.current_event),
        _content_type(),
        chunk,
        first_line,
        adapters.merchants().cipher(merchant),
        adapters.stock_changes(),
    )
    logger.info(
        "stock imported",
        extra={
            "product_id": product_id,
            "added": answer.body["added"],
            "chunk": chunk.number if chunk else None,
            "replayed": answer.replayed,
        },
    )
    response = json_response(200, answer.body)
    if answer.replayed:
        response.headers["Import-Replayed"] = "true"
    return response


@router.get(
    "/merchant/products/<product_id>/stock",
    summary="Stock levels",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(
        200, "available + reserved + sold + returned = imported", ProductStock, errors=[401, 403, 404]
    ),
)
def get_stock(product_id: str) -> Response[str]:
    product = owned_product(merchant_id(router), product_id, adapters.products())
    levels = adapters.allocation().levels(product.product_id, product.shards)
    body = levels.model_dump()
    if product.generated is not None:  # a consistent read of its count, if it has a cap
        cap = product.cap
        made = adapters.made_codes().made(product.product_id) if cap is not None else None
        left = max(0, cap - made) if cap is not None and made is not None else None
        body["generated"] = CodesMade(cap=cap, made=made, left=left).model_dump()
    return json_response(200, ProductStock.model_validate(body).model_dump(exclude_unset=True))


@router.delete(
    "/merchant/products/<product_id>/stock",
    summary="Remove unsold codes",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("the codes to remove", CodeList, text=True),
    responses=documented(
        200, "what was removed; lines not found or not available", StockRemoved, errors=[400, 401, 403, 404]
    ),
)
def delete_stock(product_id: str) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.products())
    removed = stock.remove_codes(
        product,
        text_body(router.current_event),
        router.current_event.headers.get("content-type", "application/json"),
        adapters.merchants().cipher(merchant),
        adapters.stock_changes(),
    )
    logger.info("stock removed", extra={"product_id": product_id, "removed": removed["removed"]})
    return json_response(200, removed)


@router.get(
    "/merchant/products/<product_id>/stock/export",
    summary="Export unsold codes (audited)",
    description="One code per line; the header Next-Cursor, while more follow.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "a page of unsold codes", media="text/plain", errors=[400, 401, 403, 404]),
)
def export_stock(
    product_id: str,
    cursor: Annotated[str | None, Query(description="Next-Cursor of the page before")] = None,
    limit: Annotated[str | None, Query(description=f"codes per page, 1 to {stock.EXPORT_PAGE}")] = None,
) -> Response[str]:
    merchant = merchant_id(router)
    product = owned_product(merchant, product_id, adapters.products())
    page = stock.export_codes(
        merchant,
        product,
        cursor,
        stock.export_limit(limit),
        adapters.merchants().cipher(merchant),
        adapters.stock_changes(),
        adapters.ops(),
        utcnow(),
        str(router.current_event.raw_event.get("requestContext", {}).get("requestId", "")),
    )
    # Who, which product, how many: never the codes.
    logger.info(
        "stock exported",
        extra={"merchant_id": merchant, "product_id": product_id, "count": len(page.codes)},
    )
    headers = {"Cache-Control": "no-store"}
    if page.next:
        headers["Next-Cursor"] = page.next
    return Response(
        status_code=200,
        content_type="text/plain; charset=utf-8",
        body="".join(f"{code}\n" for code in page.codes),
        headers=headers,
    )
