"""Typed errors the store raises; the edges turn them into replies or HTTP statuses."""


class StoreError(Exception):
    """Base of the store's own errors."""


class NumberTaken(StoreError):
    """A club number is already used by another club."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


class InvalidSetting(StoreError):
    """A club setting is out of its allowed range."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(StoreError):
    """A member, purchase or coupon that is not in this club."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key} not found")
        self.what = what
        self.key = key


class Conflict(StoreError):
    """The request clashes with what is recorded: `reason` names how (a machine-readable code),
    `detail` says it in words for the developer reading the API response."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NotEnoughPoints(Conflict):
    """Spending or taking more points than the member has."""

    def __init__(self, balance: int, wanted: int) -> None:
        super().__init__("not_enough_points", f"balance is {balance}, {wanted} needed")
        self.balance = balance
        self.wanted = wanted


class InvalidInput(StoreError):
    """Input that breaks a rule of the store (a refund of more than was bought, ...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
