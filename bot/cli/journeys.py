"""`klubb journey`: a club's automated messages (store.outreach.journeys) from the terminal.

Errors follow bot/cli/common.py: one line on stderr naming the trigger or flag that is wrong,
exit 2 for input the owner can fix, 1 when the thing asked for is not there or can't be done."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

import locales
from bot.cli.common import (
    Failure,
    Usage,
    add_club_options,
    columns,
    labelled,
    missing,
    printed,
    run_in_club,
)
from bot.settings import Settings
from scheduler.jobs import JOURNEYS_EVERY_MINUTES
from store.clock import utc_now
from store.errors import Conflict, InvalidInput, NotFound
from store.loyalty import tiers
from store.models import Campaign, CouponTemplate, Program
from store.outreach import campaigns, journeys
from store.states import OutboxStatus


def add_commands(commands: Any) -> None:
    """`journey list|on|off` on the `klubb` parser's subcommands."""
    journey = commands.add_parser(
        "journey", help="automated messages on a trigger (welcome, birthday, ...): list, on, off"
    )
    actions = journey.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="every trigger: on or off, settings, coupon, text, messages so far"
    )
    listing.set_defaults(command=_journey_list)
    on = actions.add_parser(
        "on", help="set up the journey for a trigger, or switch it back on; shows what it sends"
    )
    on.add_argument("trigger", metavar="TRIGGER", help=", ".join(journeys.TRIGGERS))
    on.add_argument(
        "--text",
        help="the club's own message for every language not given its own "
        "(default: the catalog's wording)",
    )
    for language in locales.LANGUAGES:
        on.add_argument(
            f"--text-{language}", metavar="TEXT", help=f"the message for members in {language}"
        )
    on.add_argument("--coupon", metavar="TEMPLATE_KEY", help="give each member a coupon with it")
    on.add_argument(
        "--category",
        metavar="CATEGORY",
        help="cross_sell: the texts given are the owner's for purchases of this category "
        "(added, or replacing its texts); the options given change the journey",
    )
    on.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the trigger (repeatable): "
        + "; ".join(
            f"{trigger} {', '.join(keys)}" for trigger, keys in journeys.DEFAULTS.items() if keys
        ),
    )
    on.add_argument(
        "--control",
        type=int,
        metavar="PERCENT",
        help="percent of the members held out to measure the effect "
        f"(0-{campaigns.MAX_CONTROL}; default 0)",
    )
    on.set_defaults(command=_journey_on)
    off = actions.add_parser(
        "off", help="pause a journey; the messages of it still queued are skipped"
    )
    off.add_argument("trigger", metavar="TRIGGER", help=", ".join(journeys.TRIGGERS))
    off.add_argument(
        "--category",
        metavar="CATEGORY",
        help="cross_sell: take this category's texts out (the journey stays as it is)",
    )
    off.set_defaults(command=_journey_off)
    for action in (listing, on, off):
        add_club_options(action)


# --- klubb journey list -----------------------------------------------------------------------


def _journey_list(args: argparse.Namespace, settings: Settings) -> int:
    def listing(session: Session, program: Program) -> str:
        have = {j.trigger: j for j in journeys.all_of(session, program.id)}
        rows = []
        for trigger in journeys.TRIGGERS:
            journey = have.get(trigger)
            shown = _settings_text(session, program, trigger, journey)
            if journey is None:
                rows.append((trigger, "-", "-", shown, "-", "-", "-", "-", "-"))
                continue
            template = _template(session, journey)
            outcome = campaigns.outcome(session, journey.id)
            waiting = outcome.by_status.get(OutboxStatus.QUEUED, 0) + outcome.by_status.get(
                OutboxStatus.SENDING, 0
            )
            rows.append(
                (
                    trigger,
                    str(journey.id),
                    "on" if journey.status == campaigns.ACTIVE else "off",
                    shown,
                    template.key if template else "-",
                    f"{journey.control_percent}%",
                    _text_kind(journey),
                    f"{waiting:,}",
                    f"{outcome.by_status.get(OutboxStatus.SENT, 0):,}",
                )
            )
        header = (
            "TRIGGER",
            "ID",
            "STATUS",
            "SETTINGS",
            "COUPON",
            "CONTROL",
            "TEXT",
            "QUEUED",
            "SENT",
        )
        return columns(header, rows, right={1, 5, 7, 8})

    return printed(run_in_club("journey", args, settings, listing))


def _settings_text(
    session: Session, program: Program, trigger: str, journey: Campaign | None
) -> str:
    """The trigger's settings as key=value, the defaults filled in; `auto` for one worked out
    when planning, with what it comes to now."""
    values = journeys.settings_of(journey) if journey else dict(journeys.DEFAULTS[trigger])
    parts = []
    for key, value in values.items():
        if key == journeys.CATEGORIES:
            parts.append(f"{key}={','.join(sorted(value)) or '-'}")
        elif value is not None:
            parts.append(f"{key}={value}")
        elif key == "threshold":
            parts.append(f"{key}=auto ({_threshold(session, program, trigger, journey)})")
        else:
            parts.append(f"{key}=auto ({journeys.NEAR_PERCENT}%)")
    return " ".join(parts) or "-"


def _threshold(session: Session, program: Program, trigger: str, journey: Campaign | None) -> int:
    # A journey not set up yet is asked about as if it were, with no settings of its own (a
    # Campaign never added to the session, so nothing is written).
    return journeys.threshold_of(
        session, program, journey or Campaign(trigger=trigger, settings=None)
    )


# --- klubb journey on -------------------------------------------------------------------------


def _journey_on(args: argparse.Namespace, settings: Settings) -> int:
    try:
        _check_trigger(args.trigger)
        given = _settings(args.settings)
    except Usage as exc:
        print(f"klubb journey: {exc}", file=sys.stderr)
        return 2
    texts = {
        language: text
        for language in locales.LANGUAGES
        if (text := getattr(args, f"text_{language}") or args.text) is not None
    }
    now = utc_now()
    if args.category is not None:
        try:
            _check_category_use(args.trigger, texts)
        except Usage as exc:
            print(f"klubb journey: {exc}", file=sys.stderr)
            return 2
        return _category_on(args, settings, texts, given, now)

    def switch_on(session: Session, program: Program) -> str:
        trigger = args.trigger
        try:
            journey = journeys.create(
                session,
                program,
                trigger=trigger,
                now=now,
                texts=texts or None,
                coupon=args.coupon,
                settings=given,
                control_percent=args.control or 0,
            )
            state = f"klubb: {trigger} journey on (set up now, id {journey.id})"
        except InvalidInput as exc:
            raise Usage(f"{_flag(exc.field, args)}: {exc.reason}") from None
        except NotFound as exc:
            raise Usage(missing(session, program, exc)) from None
        except Conflict:
            # The options were all valid (create checks them before it looks for the journey);
            # the club already has one.
            journey = _existing(session, program, trigger)
            changed = _changed(session, journey, texts, args.coupon, given, args.control)
            if changed:
                raise Failure(
                    f"the club's {trigger} journey (id {journey.id}) exists, and a journey's "
                    f"options can't be changed yet ({', '.join(changed)} "
                    f"{'differs' if len(changed) == 1 else 'differ'} from what it has): leave "
                    "them out to switch it on as it is"
                ) from None
            if journey.status == campaigns.ACTIVE:
                state = f"klubb: the {trigger} journey (id {journey.id}) was already on"
            else:
                journeys.set_active(session, program.id, trigger, active=True)
                state = f"klubb: {trigger} journey switched back on (id {journey.id})"
        return "\n".join(
            (
                _describe(session, program, journey, now, settings.public_url),
                f"{state}: it runs every {JOURNEYS_EVERY_MINUTES} minutes in `klubb serve` / "
                "`klubb worker`; each member gets it once per occasion, within the monthly cap "
                f"({program.marketing_per_month} a month)",
            )
        )

    return printed(run_in_club("journey", args, settings, switch_on))


def _check_category_use(trigger: str, texts: Mapping[str, str]) -> None:
    if trigger != journeys.CROSS_SELL:
        raise Usage(f"--category: only the {journeys.CROSS_SELL} journey has texts per category")
    if not texts:
        raise Usage("--category: give its text with --text (or --text-nb, --text-sv, --text-en)")


def _category_on(
    args: argparse.Namespace,
    settings: Settings,
    texts: Mapping[str, str],
    given: Mapping[str, int | str],
    now: dt.datetime,
) -> int:
    """`journey on cross_sell --category X --text ...`: the category's texts saved, the
    journey set up if need be, changed by the options given, and switched on."""

    def save(session: Session, program: Program) -> str:
        try:
            journey = journeys.set_category_text(session, program, args.category, texts, now=now)
            own = {k: v for k, v in (journey.settings or {}).items() if k != journeys.CATEGORIES}
            journey = journeys.update(
                session,
                program,
                journeys.CROSS_SELL,
                now=now,
                active=True,
                settings={**own, **given} if given else None,
                coupon=args.coupon,
                control_percent=args.control,
            )
        except InvalidInput as exc:
            flag = "--category" if exc.field == "category" else _flag(exc.field, args)
            raise Usage(f"{flag}: {exc.reason}") from None
        except NotFound as exc:
            raise Usage(missing(session, program, exc)) from None
        return "\n".join(
            (
                _describe(session, program, journey, now, settings.public_url),
                f"klubb: the {journeys.CROSS_SELL} journey (id {journey.id}) is on, with texts "
                f"for {', '.join(sorted(journeys.category_texts(journey)))}",
            )
        )

    return printed(run_in_club("journey", args, settings, save))


def _check_trigger(trigger: str) -> None:
    if trigger not in journeys.TRIGGERS:
        raise Usage(f"unknown trigger {trigger!r}; the triggers are {', '.join(journeys.TRIGGERS)}")


def _settings(pairs: list[str]) -> dict[str, int | str]:
    """--set KEY=VALUE ... by key, the values as whole numbers where they are. The store checks
    them: the key first (a setting of the trigger), then the value (a whole number in range)."""
    given: dict[str, int | str] = {}
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise Usage(f"--set {pair}: give KEY=VALUE, e.g. --set days=14")
        try:
            given[key] = int(raw.strip())
        except ValueError:
            given[key] = raw.strip()
    return given


def _flag(field: str, args: argparse.Namespace) -> str:
    """The flag an InvalidInput from journeys.create is about."""
    if field.startswith("settings."):
        return f"--set {field.removeprefix('settings.')}"
    if field.startswith("texts."):
        language = field.removeprefix("texts.")
        return f"--text-{language}" if getattr(args, f"text_{language}", None) else "--text"
    return {"control": "--control", "texts": "--text"}.get(field, field)


def _existing(session: Session, program: Program, trigger: str) -> Campaign:
    found = next((j for j in journeys.all_of(session, program.id) if j.trigger == trigger), None)
    if found is None:
        raise Failure(f"the club has no {trigger} journey: see `klubb journey list`")
    return found


def _changed(
    session: Session,
    journey: Campaign,
    texts: Mapping[str, str],
    coupon: str | None,
    given: Mapping[str, int | str],
    control: int | None,
) -> list[str]:
    """The options given that differ from what the journey has (those not given are kept)."""
    changed = []
    if texts and {k: v.strip() for k, v in texts.items()} != (journey.texts or {}):
        changed.append("--text")
    template = _template(session, journey)
    if coupon is not None and (template is None or template.key != coupon):
        changed.append("--coupon")
    current = journeys.settings_of(journey)
    changed += [f"--set {key}" for key, value in given.items() if current.get(key) != value]
    if control is not None and control != journey.control_percent:
        changed.append("--control")
    return changed


def _describe(
    session: Session, program: Program, journey: Campaign, now: dt.datetime, link_base: str
) -> str:
    """The journey as the owner reads it: when it sends, its options, and its message in each
    language for a made-up member, as the sender would write it."""
    template = _template(session, journey)
    trigger = journey.trigger or ""
    lines = [
        f"Journey {trigger!r} of {program.name}",
        labelled("when", _when(session, program, journey)),
        labelled("settings", _settings_text(session, program, trigger, journey)),
        labelled(
            "coupon",
            f"{template.key}, a code of their own for each member" if template else "none",
        ),
        labelled(
            "control",
            f"{journey.control_percent}% held out" if journey.control_percent else "none held out",
        ),
        labelled("text", _text_source(journey)),
    ]
    ladder = tiers.ladder(session, program.id)
    if trigger in (journeys.NEAR_TIER, journeys.TIER_REACHED) and len(ladder) < 2:
        lines.append(
            labelled("", "the club has a single tier: no member qualifies until it has more")
        )
    lines.append("What a member gets (a made-up member):")
    for language in locales.LANGUAGES:
        text = journeys.sample_text(session, program, journey, language, now, link_base)
        size = locales.segments(text)
        lines.append(f"  {language}, {size.encoding}, {size.segments} SMS")
        lines += ["    " + line for line in text.splitlines()]
    return "\n".join(lines)


def _when(session: Session, program: Program, journey: Campaign) -> str:
    values = journeys.settings_of(journey)
    trigger = journey.trigger
    if trigger == journeys.WELCOME:
        hours = values["delay_hours"]
        after = f"{hours} hours after a member joins" if hours else "as soon as a member joins"
        return f"{after} (catching up to {values['lookback_days']} days late)"
    if trigger == journeys.BIRTHDAY:
        return "on the member's birthday (the club's day), once a year"
    if trigger == journeys.EXPIRING:
        days = values["days"]
        return f"when some of a member's points expire within {days} days, once per expiry date"
    if trigger == journeys.TIER_REACHED:
        return (
            "when a member reaches a tier above the lowest, once per tier "
            f"(catching up to {values['lookback_days']} days late)"
        )
    if trigger == journeys.NEAR_TIER:
        within = values["within"]
        reach = f"{within} points" if within else f"{journeys.NEAR_PERCENT}% of its threshold"
        return f"when a member is within {reach} of the next tier, once per tier and period"
    if trigger == journeys.BALANCE:
        threshold = journeys.threshold_of(session, program, journey)
        return f"when a balance reaches {threshold:,} points, again after points are spent"
    if trigger == journeys.COMING_REWARD:
        return (
            f"when a member is within {values['points']:,} points of the nearest reward above "
            "their balance, once per reward (again after points are spent)"
        )
    if trigger in journeys.MILESTONES:
        what = {
            journeys.MILESTONE_POINTS: f"has earned {values['at']:,} points in all",
            journeys.MILESTONE_PURCHASES: f"makes purchase number {values['at']:,}",
            journeys.MILESTONE_MONTHS: f"has been a member for {values['at']:,} months",
        }[trigger]
        return (
            f"when a member {what}, once per member "
            f"(catching up to {values['lookback_days']} days late)"
        )
    if trigger == journeys.MEMBER_DAY:
        return "on the day a member joined (the club's day), every year after the first"
    if trigger == journeys.GIFT_RECEIVED:
        return (
            "when staff or a till give a member a coupon as a gift, once per gift "
            f"(catching up to {values['lookback_days']} days late)"
        )
    if trigger == journeys.CROSS_SELL:
        listed = sorted(journeys.category_texts(journey))
        of = f"of {', '.join(listed)}" if listed else "of a category with a text (none yet)"
        return (
            f"{values['delay_days']} days after a purchase {of}, unless the member bought the "
            f"category again since; once per purchase (catching up to "
            f"{values['lookback_days']} days late)"
        )
    if trigger == journeys.AFTER_PURCHASE:
        return (
            f"{values['days']} days after a member's latest purchase, if none since, once per "
            f"purchase (catching up to {values['lookback_days']} days late)"
        )
    return (
        f"when a member has bought nothing for {values['days']} days, once per last purchase "
        f"(catching up to {values['lookback_days']} days late)"
    )


# --- klubb journey off ------------------------------------------------------------------------


def _journey_off(args: argparse.Namespace, settings: Settings) -> int:
    try:
        _check_trigger(args.trigger)
    except Usage as exc:
        print(f"klubb journey: {exc}", file=sys.stderr)
        return 2

    if args.category is not None and args.trigger != journeys.CROSS_SELL:
        print(
            f"klubb journey: --category: only the {journeys.CROSS_SELL} journey has texts per "
            "category",
            file=sys.stderr,
        )
        return 2

    def pause(session: Session, program: Program) -> str:
        trigger = args.trigger
        journey = _existing(session, program, trigger)
        if args.category is not None:
            try:
                journeys.remove_category(session, program, args.category)
            except NotFound:
                listed = ", ".join(sorted(journeys.category_texts(journey))) or "none"
                raise Failure(
                    f"the {trigger} journey has no texts for {args.category!r} (it has: {listed})"
                ) from None
            return f"klubb: {args.category!r} taken out of the {trigger} journey (id {journey.id})"
        if journey.status != campaigns.ACTIVE:
            return f"klubb: the {trigger} journey (id {journey.id}) was already off"
        journeys.set_active(session, program.id, trigger, active=False)
        outcome = campaigns.outcome(session, journey.id)
        waiting = outcome.by_status.get(OutboxStatus.QUEUED, 0)
        return (
            f"klubb: {trigger} journey off (id {journey.id}): it plans nothing more, and the "
            f"sender skips its {waiting:,} queued messages while it is off"
        )

    return printed(run_in_club("journey", args, settings, pause))


# --- helpers ----------------------------------------------------------------------------------


def _text_kind(journey: Campaign) -> str:
    """The list's TEXT column: whose wording the journey speaks, and in which languages when
    only some are the club's own."""
    own = journeys.own_texts(journey)
    if not own:
        return "catalog wording"
    if set(own) >= set(locales.LANGUAGES):
        return "own text"
    return "own text " + ",".join(language for language in locales.LANGUAGES if language in own)


def _text_source(journey: Campaign) -> str:
    own = journeys.own_texts(journey)
    if not own:
        return "the catalog's wording"
    if set(own) >= set(locales.LANGUAGES):
        return "the club's own"
    languages = [language for language in locales.LANGUAGES if language in own]
    others = [language for language in locales.LANGUAGES if language not in own]
    return f"the club's own in {', '.join(languages)}, the catalog's wording in {', '.join(others)}"


def _template(session: Session, journey: Campaign) -> CouponTemplate | None:
    if journey.coupon_template_id is None:
        return None
    return session.get(CouponTemplate, journey.coupon_template_id)
