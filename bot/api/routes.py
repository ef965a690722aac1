"""The API's route table, read by the router and by the OpenAPI document alike."""

from __future__ import annotations

from aiohttp import web

from bot.api import baskets, coupons, members, openapi, purchases, schemas
from bot.api.operations import Operation, Param

PREFIX = "/api/v1"

MEMBER_ID = Param("member_id", "path", schemas.MEMBER_ID)
CODE = Param("code", "path", schemas.COUPON_CODE)
TRANSACTION = Param("transaction_id", "path", schemas.TRANSACTION_ID)
PHONE = Param("phone", "query", schemas.PHONE)

ROUTES: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/members",
        "enrolMember",
        "Enrol a customer at checkout",
        members.enrol,
        scope="members:write",
        body="EnrolmentIn",
        responses={
            201: ("Enrolled: the member gets the consent confirmation by SMS", "Member"),
            200: ("Already an active member: nothing changed, no SMS", "Member"),
        },
        description="The phone is read in the club's country. The consent evidence is logged "
        "with the key's name as what the till captured.",
    ),
    Operation(
        "GET",
        "/members",
        "findMember",
        "Find a member by phone number",
        members.find,
        scope="members:read",
        params=(PHONE,),
        responses={200: ("The member", "Member")},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/members/{member_id}",
        "getMember",
        "A member by id",
        members.show,
        scope="members:read",
        params=(MEMBER_ID,),
        responses={200: ("The member", "Member")},
        errors=(404,),
    ),
    Operation(
        "GET",
        "/members/{member_id}/coupons",
        "listMemberCoupons",
        "The member's coupons that can be used now",
        members.member_coupons,
        scope="coupons:read",
        params=(MEMBER_ID,),
        responses={200: ("Valid coupons, soonest to end first", "CouponList")},
        errors=(404,),
    ),
    Operation(
        "POST",
        "/members/{member_id}/coupons",
        "giveCoupon",
        "Give the member a coupon as a gift",
        coupons.give,
        scope="coupons:give",
        params=(MEMBER_ID,),
        body="GiftIn",
        responses={201: ("Given: a coupon of its own, valid from now", "Coupon")},
        errors=(404,),
        description="A coupon of the club's template (by its key; a retired one is a 404) for "
        "the member, given by the key's name. If the club's gift_received journey is on, the "
        "member gets an SMS about it (consent, the monthly cap and quiet hours apply). A "
        "number that has not joined, or was erased, is a 422.",
    ),
    Operation(
        "POST",
        "/members/{member_id}/adjustments",
        "adjustPoints",
        "Add or take points, with a reason",
        members.adjust,
        scope="points:adjust",
        params=(MEMBER_ID,),
        body="AdjustmentIn",
        responses={201: ("Adjusted", "Adjustment")},
        errors=(404, 409),
        description="Taking more points than the member has is a 409 with the balance.",
    ),
    Operation(
        "POST",
        "/purchases",
        "recordPurchase",
        "Record a sale to a member",
        purchases.record,
        scope="purchases:write",
        body="PurchaseIn",
        responses={
            201: ("Recorded, with the points earned", "Purchase"),
            200: ("The same sale sent again: what was recorded the first time", "Purchase"),
        },
        errors=(404, 409),
        description="Idempotent on transaction_id: the same body again is answered as the "
        "first time; other contents under the same transaction_id are a 409. An unknown phone "
        "is a 404 (a sale never creates a member). With coupon_codes, Klubb prices the sale "
        "as /baskets/evaluate does and redeems the coupons that apply with it, exactly once "
        "(a retry redeems nothing again); a code that can't be used (redeemed at another "
        "till a moment ago, say) does not stop the sale: it is recorded without it, and "
        "basket.refused says why. Codes need the scope coupons:redeem too.",
    ),
    Operation(
        "POST",
        "/baskets/evaluate",
        "evaluateBasket",
        "Price a basket: each line's discount and the coupons that apply",
        baskets.evaluate,
        scope="coupons:read",
        body="BasketIn",
        responses={200: ("The basket priced; nothing recorded or redeemed", "Basket")},
        errors=(404, 409),
        description="The member's tier discount, then the coupons shown: each line's "
        "discount in minor units, the coupons that apply and, for each that doesn't, why "
        "(reason: unknown_code, duplicate, other_member, redeemed, expired, not_yet_valid, "
        "no_offer, not_in_scope, too_few_items, min_not_met, not_combinable, no_discount). "
        "Send the same lines and codes to /purchases as coupon_codes to record the sale and "
        "redeem them. An unknown phone is a 404, a number that has not joined a 409.",
    ),
    Operation(
        "POST",
        "/purchases/{transaction_id}/refunds",
        "refundPurchase",
        "Refund a sale, whole or by lines",
        purchases.refund,
        scope="purchases:write",
        params=(TRANSACTION,),
        body="RefundIn",
        responses={
            201: ("Refunded, with the points taken back", "Refund"),
            200: ("The same refund sent again", "Refund"),
        },
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/coupons/{code}",
        "getCoupon",
        "A coupon's state, for the till to check",
        coupons.show,
        scope="coupons:read",
        params=(CODE,),
        responses={200: ("The coupon", "Coupon")},
        errors=(404,),
    ),
    Operation(
        "POST",
        "/coupons/{code}/redeem",
        "redeemCoupon",
        "Redeem a coupon (once)",
        coupons.redeem,
        scope="coupons:redeem",
        params=(CODE,),
        body="RedemptionIn",
        body_required=False,
        responses={200: ("Redeemed", "Coupon")},
        errors=(404, 409),
        description="Of any number of tills redeeming one code at once exactly one gets the "
        "200; the others get a 409 with reason coupon_redeemed.",
    ),
)


def add_api(app: web.Application) -> None:
    for operation in ROUTES:
        endpoint = operation.endpoint()
        if operation.method == "GET":
            # And HEAD, as every GET of the app answers it (aiohttp sends the GET's headers
            # without its body): a till's or monitor's HEAD was a 405.
            app.router.add_get(PREFIX + operation.path, endpoint)
        else:
            app.router.add_route(operation.method, PREFIX + operation.path, endpoint)
    document = openapi.document(ROUTES, PREFIX)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(PREFIX + "/openapi.json", openapi_json)
