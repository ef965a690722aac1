"""Loyalty: the points ledger, earning, purchases, tiers, coupons, rewards and perks."""
