"""The member page's HTML: server-rendered, no JavaScript, one small stylesheet inline (allowed
by its hash in the page's own Content Security Policy), built for a 360-px phone at the till."""

from __future__ import annotations

import base64
import hashlib
from html import escape

import locales
from bot.page import codes
from bot.page.view import PageView

# High contrast and a barcode as wide as the phone: a till's scanner reads it off the screen.
STYLE = (
    "body{margin:0;font:17px/1.4 system-ui,sans-serif;color:#000;background:#fff}"
    "main{max-width:34em;margin:0 auto;padding:12px}"
    "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .4em}"
    "section{border-top:2px solid #000;padding-bottom:8px}"
    ".big{font-size:2em;font-weight:700;margin:0}"
    "progress,meter{width:100%;height:1.2em}"
    ".coupon{border:2px solid #000;border-radius:8px;padding:10px;margin:10px 0}"
    ".code{font:700 1.6em/1.2 monospace;letter-spacing:.1em;text-align:center;margin:.2em 0}"
    "svg.bar{display:block;width:100%;height:96px}"
    "svg.qr{display:block;margin:8px auto}"
    "button,a.button{display:block;width:100%;box-sizing:border-box;margin:8px 0;padding:12px;"
    "font:inherit;font-weight:700;text-align:center;border:2px solid #000;border-radius:8px;"
    "background:#fff;color:#000;text-decoration:none}"
    "button.danger{background:#000;color:#fff}"
    "small{color:#333}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# The page loads nothing, runs nothing and posts only to itself; its one style is allowed by
# hash. No referrer, so the token in the address never leaves in a Referer header.
POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def page(view: PageView, token: str, forms: dict[str, str]) -> str:
    """The member's page; `forms` holds the form token of each action (leave, delete)."""
    lang = view.language

    def t(message_id: str, **params: object) -> str:
        return escape(locales.text(message_id, lang, **params))

    hello = (
        t("web.page.hello", first_name=view.first_name)
        if view.first_name
        else t("web.page.hello.anonymous")
    )
    parts = [
        f"<h1>{hello}</h1>",
        f"<p>{t('web.page.member_of', club=view.club)}</p>",
        "<section>",
        f'<p class="big">{t("web.page.points", count=view.balance)}</p>',
    ]
    if view.tier:
        parts.append(f"<p>{t('web.page.tier', tier=view.tier)}</p>")
        if view.next_tier and view.next_threshold:
            parts.append(
                f'<progress max="{view.next_threshold}" '
                f'value="{min(view.qualifying, view.next_threshold)}"></progress>'
                f"<p>{t('web.page.to_next', count=view.to_next, tier=view.next_tier)}</p>"
            )
        else:
            parts.append(f"<p>{t('web.page.top_tier')}</p>")
    if view.expiry_date is not None and view.expiry_points:
        parts.append(
            f"<p>{t('web.page.expiry', count=view.expiry_points, date=view.expiry_date)}</p>"
        )
    parts.append("</section><section>")
    parts.append(f"<h2>{t('web.page.coupons')}</h2>")
    if not view.coupons:
        parts.append(f"<p>{t('web.page.no_coupons')}</p>")
    for coupon in view.coupons:
        parts.append(
            '<div class="coupon">'
            f"<p><strong>{escape(coupon.benefit)}</strong><br>"
            f"{t('web.page.coupon.until', date=coupon.until)}</p>"
            f"{codes.code128_svg(coupon.code, coupon.shown)}"
            f'<p class="code">{escape(coupon.shown)}</p>'
            f"{codes.qr_svg(coupon.code, coupon.shown)}"
            f"<p><small>{t('web.page.coupon.show')}</small></p>"
            "</div>"
        )
    parts.append("</section>")
    if view.punches:
        parts.append(f"<section><h2>{t('web.page.punch.title')}</h2>")
        for punch in view.punches:
            parts.append(
                f"<p><strong>{escape(punch.benefit)}</strong><br>"
                f"{t('web.page.punch', count=punch.count, every=punch.every)}</p>"
                f'<meter min="0" max="{punch.every}" value="{punch.count}"></meter>'
            )
        parts.append("</section>")
    base = f"/m/{escape(token)}"
    parts += [
        f"<section><h2>{t('web.page.data.title')}</h2>",
        f"<p>{t('web.page.data.text', club=view.club)}</p>",
        f'<a class="button" href="{base}/data.json" download>{t("web.page.data.download")}</a>',
        "</section>",
        f"<section><h2>{t('web.page.leave.title')}</h2>",
        f"<p>{t('web.page.leave.text', club=view.club)}</p>",
        _form(f"{base}/leave", forms["leave"], t("web.page.leave.button")),
        "</section>",
        f"<section><h2>{t('web.page.delete.title')}</h2>",
        f"<p>{t('web.page.delete.text')}</p>",
        _form(f"{base}/delete", forms["delete"], t("web.page.delete.button")),
        "</section>",
        f"<p><small>{t('web.page.expires', date=view.link_until)}</small></p>",
    ]
    return document(lang, t("web.page.title", club=view.club), "".join(parts))


def confirm_delete(language: str, club: str, token: str, form: str) -> str:
    """The second page of deleting: the same erasure as DELETE by SMS, once confirmed."""

    def t(message_id: str, **params: object) -> str:
        return escape(locales.text(message_id, language, **params))

    base = f"/m/{escape(token)}"
    body = (
        f"<h1>{t('web.page.delete.title')}</h1>"
        f"<p>{t('web.page.delete.confirm', club=club)}</p>"
        f"{_form(f'{base}/delete/confirm', form, t('web.page.delete.yes'), danger=True)}"
        f'<a class="button" href="{base}">{t("web.page.delete.no")}</a>'
    )
    return document(language, t("web.page.title", club=club), body)


def message(language: str, title_id: str, text_id: str, **params: object) -> str:
    """A page of one message: after leaving or deleting, a 404, a 429."""
    title = escape(locales.text(title_id, language, **params))
    text = escape(locales.text(text_id, language, **params))
    return document(language, title, f"<h1>{title}</h1><p>{text}</p>")


def document(language: str, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{escape(language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex,nofollow">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{title}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _form(action: str, token: str, label: str, *, danger: bool = False) -> str:
    kind = ' class="danger"' if danger else ""
    return (
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="form" value="{escape(token)}">'
        f"<button{kind}>{label}</button></form>"
    )
