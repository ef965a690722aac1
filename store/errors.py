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
