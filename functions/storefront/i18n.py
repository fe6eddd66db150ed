"""The hosted pages' languages: zh-CN and en, chosen by the buyer's toggle, else Accept-Language;
and money as buyers read it in them."""

from typing import Final

from shared.money import MINOR_DIGITS, Money

LANGUAGES: Final = ("zh-CN", "en")
DEFAULT: Final = "en"
COOKIE: Final = "miaofa_lang"

# The currencies a buyer knows by a sign: CLDR's narrow symbols, which the pages' scripts ask the
# browser's Intl.NumberFormat for (`currencyDisplay: "narrowSymbol"`), so both write ¥99.00 and $5.00
# in zh-CN and en alike. Any other currency is written with its ISO code (`HKD 5.00`), as the scripts
# then ask Intl for (`currencyDisplay: "code"`).
SYMBOLS: Final = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "KRW": "₩"}


def money(value: Money, lang: str) -> str:
    """1999 CNY -> `¥19.99`, 500 USD -> `$5.00`, 1234500 HKD -> `HKD 12,345.00`: ISO 4217 minor units,
    grouped by thousands (the same in zh-CN and en)."""
    del lang  # zh-CN and en write amounts alike; a language that does not would choose here
    digits = MINOR_DIGITS.get(value.currency, 2)
    whole, fraction = divmod(value.amount, 10**digits)
    number = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    symbol = SYMBOLS.get(value.currency)
    return f"{symbol}{number}" if symbol else f"{value.currency}\u00a0{number}"


def money_format() -> dict[str, object]:
    """What the pages' scripts need to write amounts as `money` does (the page's `data-money`)."""
    return {"digits": MINOR_DIGITS, "symbols": sorted(SYMBOLS)}


TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "switch": "中文",
        "price": "Price",
        "each_from": "from {quantity}: {price} each",
        "in_stock": "{count} in stock",
        "sold_out": "Sold out",
        "sold_out_long": "This product is sold out. Nothing can be bought until the shop adds stock.",
        "instant": "Instant delivery: your code is on the order page seconds after payment.",
        "quantity": "Quantity",
        "email": "E-mail (for your receipt and to find this order again)",
        "pay_with": "Pay with",
        "buy": "Buy",
        "working": "Starting your payment…",
        "provider.sandbox": "Sandbox (test payment)",
        "provider.stripe": "Card (Stripe)",
        "provider.alipay": "Alipay",
        "provider.wechatpay": "WeChat Pay",
        "scan": "Scan to pay",
        "scan_with": "Scan this code with {provider} to pay {amount}. This page shows your code once paid.",
        "total": "Total",
        "unit_times": "{quantity} × {price}",
        "summary": "Your order",
        "product": "Product",
        "amount": "Amount",
        "order": "Order",
        "status": "Status",
        "timeline": "Timeline",
        "codes": "Your codes",
        "copy": "Copy",
        "copied": "Copied",
        "copy_all": "Copy all",
        "download": "Download as text",
        "instructions": "How to use",
        "loading": "Loading…",
        "no_access": "This browser cannot open this order. Use the link in your e-mail, "
        "or look your orders up by e-mail below.",
        "not_found": "No such order, or this link is no longer valid.",
        "offline": "Cannot reach the shop; trying again…",
        "status.PENDING_PAYMENT": "Waiting for your payment",
        "status.PAID": "Paid — your code is on its way",
        "status.IN_REVIEW": "In review",
        "status.DELIVERED": "Delivered",
        "status.EXPIRED": "Expired",
        "status.REFUNDING": "Being refunded",
        "status.REFUNDED": "Refunded",
        "status.CLAIMED": "After-sales claim open",
        "status.REPLACED": "Replaced",
        "explain.PENDING_PAYMENT": "Finish the payment before {expires}; your code appears here by itself.",
        "explain.PAID": "Payment received. Delivery takes a second or two; this page updates by itself.",
        "explain.IN_REVIEW": "Your payment is being checked by the shop. You will get the code or your "
        "money back; this page updates by itself.",
        "explain.DELIVERED": "Your codes are below. Keep them safe: anyone with a code can use it.",
        "explain.EXPIRED": "This order was not paid in time and has expired. Nothing was charged.",
        "explain.REFUNDING": "Your payment is being returned to you.",
        "explain.REFUNDED": "Your payment was returned to you.",
        "explain.SOLD_OUT": "It sold out before your payment arrived, so your payment is returned to you.",
        "explain.CLAIMED": "The shop is looking at your after-sales claim.",
        "explain.REPLACED": "Your code was replaced.",
        "event.order.created": "Order placed",
        "event.payment.succeeded": "Payment received",
        "event.payment.failed": "Payment failed",
        "event.payment.wrong_amount": "A payment of another amount arrived: it is being refunded",
        "event.order.delivered": "Code delivered",
        "event.reservation.expired": "Reservation expired",
        "event.review.held": "Held for review",
        "event.review.released": "Review passed",
        "event.refund.requested": "Refund started",
        "event.refund.confirmed": "Refund completed",
        "event.claim.opened": "Claim opened",
        "event.claim.replaced": "Code replaced",
        "buy_again": "Back to the product",
        "lookup": "Find my orders",
        "order_number": "Order number (optional: only that order)",
        "lookup_sent": "If this address has orders here, a link to them is on its way.",
        "send_link": "E-mail me a link",
        "error.out_of_stock": "Sold out: not enough stock left for this quantity.",
        "error.daily_limit_reached": "You have reached this product's daily limit.",
        "error.unpaid_limit_reached": "You have unpaid orders of this product: pay them or let them expire first.",
        "error.too_many_pending_orders": "You have too many unpaid orders: pay one or let it expire first.",
        "error.rate_limited": "Too many requests; please wait a minute and try again.",
        "error.busy": "The shop is very busy right now; please try again in a moment.",
        "error.payment_provider_unavailable": "The payment provider did not answer. Please try again in a moment.",
        "error.invalid_provider": "This payment method is not available; please choose another.",
        "error.currency_not_supported": "This payment method cannot take this currency; please choose another.",
        "error.state_conflict": "This order cannot go on as it is; please start again.",
        "error.product_not_found": "This product is not on sale any more.",
        "error.invalid_product_id": "This product is not on sale any more.",
        "error.validation_error": "This quantity cannot be bought: the shop may have just changed this product. Please reload the page.",
        "error.invalid_quantity": "Enter the quantity as a whole number from {min} to {max}.",
        "error.invalid_email": "Enter a valid e-mail address.",
        "error.invalid_order_id": "Enter the order number as your e-mail shows it (ord_ and 20 letters and digits).",
        "error.total_too_large": "The total is more than one payment can be; please choose fewer.",
        "error.risk_blocked": "The shop cannot accept this order. Contact the shop if you think this is wrong.",
        "error.order_not_found": "No such order, or this link is no longer valid.",
        "error.internal_error": "Something went wrong on our side. Please try again.",
        "error.network": "Cannot reach the shop. Check your connection and try again.",
        "error.other": "Something went wrong (error {code}). Please try again.",
        "meta.product": "{price}. Instant delivery: your code is on the order page seconds after payment.",
        "meta.shop": "{shop}: digital goods with instant delivery.",
        "shop.other": "Other",
        "shop.instant": "Instant delivery",
        "shop.contact": "Contact",
        "shop.support": "Support e-mail",
        "shop.announcement": "Announcement",
        "shop.logo": "{shop} logo",
        "shop.empty": "Nothing is on sale here yet.",
        "shop.none_title": "No shop here yet",
        "shop.none": "No shop is set up at this address.",
        "not_found.title": "Not found",
        "not_found.product": "This product does not exist or is no longer on sale.",
        "not_found.shop": "There is no such shop.",
        "not_found.order": "No such order, or this link is no longer valid.",
        "home": "Go to the shop",
    },
    "zh-CN": {
        "switch": "English",
        "price": "价格",
        "each_from": "{quantity} 件起：每件 {price}",
        "in_stock": "库存 {count}",
        "sold_out": "已售罄",
        "sold_out_long": "此商品已售罄，商家补货前无法购买。",
        "instant": "秒发：付款后几秒内卡密即显示在订单页。",
        "quantity": "数量",
        "email": "邮箱（用于接收凭证和找回订单）",
        "pay_with": "支付方式",
        "buy": "购买",
        "working": "正在发起支付…",
        "provider.sandbox": "沙箱（测试支付）",
        "provider.stripe": "银行卡（Stripe）",
        "provider.alipay": "支付宝",
        "provider.wechatpay": "微信支付",
        "scan": "扫码支付",
        "scan_with": "请用{provider}扫描此二维码，支付 {amount}。付款后卡密会显示在本页。",
        "total": "合计",
        "unit_times": "{quantity} × {price}",
        "summary": "订单内容",
        "product": "商品",
        "amount": "金额",
        "order": "订单",
        "status": "状态",
        "timeline": "订单进度",
        "codes": "您的卡密",
        "copy": "复制",
        "copied": "已复制",
        "copy_all": "全部复制",
        "download": "下载为文本",
        "instructions": "使用说明",
        "loading": "加载中…",
        "no_access": "此浏览器无法打开该订单。请使用邮件中的链接，或在下方用邮箱查询订单。",
        "not_found": "订单不存在，或链接已失效。",
        "offline": "暂时无法连接商店，正在重试…",
        "status.PENDING_PAYMENT": "等待付款",
        "status.PAID": "已付款，正在发货",
        "status.IN_REVIEW": "审核中",
        "status.DELIVERED": "已发货",
        "status.EXPIRED": "已过期",
        "status.REFUNDING": "退款中",
        "status.REFUNDED": "已退款",
        "status.CLAIMED": "售后处理中",
        "status.REPLACED": "已更换",
        "explain.PENDING_PAYMENT": "请在 {expires} 前完成付款；卡密会自动显示在此页。",
        "explain.PAID": "已收到付款。发货只需一两秒，本页会自动更新。",
        "explain.IN_REVIEW": "商家正在核实您的付款。您会收到卡密或退款，本页会自动更新。",
        "explain.DELIVERED": "卡密如下，请妥善保管：任何拿到卡密的人都能使用。",
        "explain.EXPIRED": "订单未在时限内付款，已过期，未扣款。",
        "explain.REFUNDING": "您的付款正在退回。",
        "explain.REFUNDED": "您的付款已退回。",
        "explain.SOLD_OUT": "您的付款到达前商品已售罄，付款将退回给您。",
        "explain.CLAIMED": "商家正在处理您的售后申请。",
        "explain.REPLACED": "您的卡密已更换。",
        "event.order.created": "已下单",
        "event.payment.succeeded": "已付款",
        "event.payment.failed": "付款失败",
        "event.payment.wrong_amount": "收到一笔金额不符的付款，正在原路退回",
        "event.order.delivered": "已发货",
        "event.reservation.expired": "预留已过期",
        "event.review.held": "进入审核",
        "event.review.released": "审核通过",
        "event.refund.requested": "开始退款",
        "event.refund.confirmed": "退款完成",
        "event.claim.opened": "发起售后",
        "event.claim.replaced": "已更换卡密",
        "buy_again": "返回商品页",
        "lookup": "查询我的订单",
        "order_number": "订单号（可选：只查这一笔）",
        "lookup_sent": "如果该邮箱在本店有订单，查询链接已发送。",
        "send_link": "发送查询链接",
        "error.out_of_stock": "库存不足，无法购买该数量。",
        "error.daily_limit_reached": "您今天购买此商品已达上限。",
        "error.unpaid_limit_reached": "您有此商品的未付款订单，请先付款或等待其过期。",
        "error.too_many_pending_orders": "您的未付款订单过多，请先付款或等待其过期。",
        "error.rate_limited": "请求过于频繁，请稍后再试。",
        "error.busy": "当前访问人数较多，请稍后再试。",
        "error.payment_provider_unavailable": "支付服务暂时没有响应，请稍后再试。",
        "error.invalid_provider": "该支付方式暂不可用，请选择其他方式。",
        "error.currency_not_supported": "该支付方式不支持此币种，请选择其他方式。",
        "error.state_conflict": "该订单无法继续，请重新下单。",
        "error.product_not_found": "该商品已下架或不存在。",
        "error.invalid_product_id": "该商品已下架或不存在。",
        "error.validation_error": "无法购买该数量：商家可能刚修改了此商品，请刷新页面。",
        "error.invalid_quantity": "请输入 {min} 到 {max} 之间的整数数量。",
        "error.invalid_email": "请输入有效的邮箱地址。",
        "error.invalid_order_id": "请按邮件中的格式输入订单号（ord_ 加 20 位字母和数字）。",
        "error.total_too_large": "总金额超出单笔支付上限，请减少数量。",
        "error.risk_blocked": "商店无法接受此订单。如有疑问，请联系商家。",
        "error.order_not_found": "订单不存在，或链接已失效。",
        "error.internal_error": "商店出了点问题，请重试。",
        "error.network": "无法连接商店，请检查网络后重试。",
        "error.other": "出错了（错误代码 {code}），请重试。",
        "meta.product": "{price}。秒发：付款后几秒内卡密即显示在订单页。",
        "meta.shop": "{shop}：数字商品，付款后秒发。",
        "shop.other": "其他",
        "shop.instant": "自动发货（秒发）",
        "shop.contact": "联系方式",
        "shop.support": "客服邮箱",
        "shop.announcement": "公告",
        "shop.logo": "{shop} 标志",
        "shop.empty": "本店暂无在售商品。",
        "shop.none_title": "此处尚无商店",
        "shop.none": "此地址尚未设置商店。",
        "not_found.title": "页面不存在",
        "not_found.product": "该商品不存在或已下架。",
        "not_found.shop": "该商店不存在。",
        "not_found.order": "订单不存在，或链接已失效。",
        "home": "前往商店",
    },
}


def choose(
    chosen: str | None, cookie: str | None, accept_language: str | None, fallback: str = DEFAULT
) -> str:
    """The page's language: the toggle's choice (query, then cookie), else the buyer's preferred
    language that we have (Accept-Language, by q-value), else `fallback` (the shop's default
    language on its page; English elsewhere)."""
    for explicit in (chosen, cookie):
        if explicit in LANGUAGES:
            return str(explicit)
    best, best_q = fallback if fallback in LANGUAGES else DEFAULT, 0.0
    for part in (accept_language or "")[:1000].split(","):
        tag, _, params = part.strip().partition(";")
        try:
            q = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        primary = tag.strip().lower().split("-")[0]
        language = {"zh": "zh-CN", "en": "en"}.get(primary)
        if language and q > best_q:
            best, best_q = language, q
    return best
