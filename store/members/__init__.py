"""Members: joining, consent, profile answers, privacy, numbers, search, imports and exports."""
